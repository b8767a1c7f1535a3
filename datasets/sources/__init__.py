"""Public-dataset adapters: ToothFairy2, DENTEX, generic NIfTI pairs."""
