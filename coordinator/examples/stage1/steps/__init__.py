"""The stage-1 steps (plans/stage1.yaml names them as ``steps.stage1:<function>``)."""
