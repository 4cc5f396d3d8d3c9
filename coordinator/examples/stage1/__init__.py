"""Stage 1 of a fine-tuning project, offline: pilot → QC with retries → scale-out → held-out set → SFT
dry run → paired evaluation with McNemar's test. `coord init --example stage1` writes it."""
