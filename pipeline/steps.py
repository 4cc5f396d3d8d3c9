import importlib

BUILTIN_STEP_MODULES = ("pipeline.generate","pipeline.to_adp","pipeline.sft","pipeline.openai_format","pipeline.audit","pipeline.scrub","pipeline.rebalance","pipeline.finetune","pipeline.benchmark","pipeline.report")
for _name in BUILTIN_STEP_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError:
        pass
