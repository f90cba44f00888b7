"""Subcommands of the genoformer CLI; each module registers one parser and calls into the library."""
