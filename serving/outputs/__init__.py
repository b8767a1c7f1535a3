"""Output files of one analysis: overlays, report and the other documents written beside findings.json."""
