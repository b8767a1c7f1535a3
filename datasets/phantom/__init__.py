"""Phantom lab: realistic synthetic dental CBCTs and radiographs with exact ground truth."""
