"""Readers for genomic files (FASTA, BAM/CRAM, VCF/BCF, BED) that validate and fail with one clear line."""
