"""Plots and reports from pipeline outputs."""
