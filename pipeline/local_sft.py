"""Local QLoRA SFT with TRL (or Unsloth) on a GPU machine: config model, validation, and the trainer.

``python -m pipeline.local_sft --config CONFIG.json --check`` validates the config and
the dataset and exits (0 valid, 2 invalid with every problem named); without
``--check`` it trains. The heavy libraries (torch, transformers, peft, bitsandbytes, trl,
datasets, unsloth) are imported only to train, so validation works on any machine.
The dataset is the OpenAI-format chat file the finetune step validated (``messages``
rows), which TRL's SFTTrainer reads directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_BASE_MODEL = "unsloth/Llama-3.2-3B-Instruct-bnb-4bit"
DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LocalSFTConfig(BaseModel):
    """Everything one local QLoRA SFT run needs (written by the ``local`` finetune backend)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    trainer: Literal["unsloth", "trl"] = "unsloth"
    """``unsloth`` (FastLanguageModel) or plain ``trl`` + peft + bitsandbytes."""
    base_model: str = Field(min_length=3, pattern=r"^[\w.\-]+/[\w.\-]+$|^/")
    """A Hugging Face model id (``org/name``) or an absolute local path."""
    dataset: str
    """JSONL of ``{"messages": [...]}`` rows (absolute path)."""
    output_dir: str
    load_in_4bit: bool = True
    """QLoRA: the frozen base model in 4-bit NF4."""
    lora_r: int = Field(default=16, ge=1, le=256)
    lora_alpha: int = Field(default=32, ge=1, le=512)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS), min_length=1)
    max_seq_length: int = Field(default=2048, ge=128, le=131072)
    num_train_epochs: int = Field(default=3, ge=1, le=50)
    learning_rate: float = Field(default=2e-4, gt=0.0, lt=1.0)
    per_device_train_batch_size: int = Field(default=2, ge=1, le=512)
    gradient_accumulation_steps: int = Field(default=4, ge=1, le=1024)
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0)
    bf16: bool = True
    seed: int = 42

    @model_validator(mode="after")
    def _qlora(self) -> LocalSFTConfig:
        if not self.load_in_4bit:
            raise ValueError("load_in_4bit must be true: this backend runs QLoRA (4-bit base, LoRA adapters)")
        return self


def check_dataset(path: Path, sample: int = 50) -> list[str]:
    """Problems with the dataset file (missing, unreadable, rows without a messages list)."""
    if not path.is_file():
        return [f"dataset {path} does not exist"]
    problems = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if n > sample:
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"{path}:{n}: not JSON ({e.msg})")
                continue
            if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
                problems.append(f"{path}:{n}: messages: expected a non-empty list")
    return problems


def load_config(path: Path) -> tuple[LocalSFTConfig | None, list[str]]:
    """The config at ``path`` and every problem found (config fields, then the dataset)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        return None, [f"{path}: cannot read config: {e}"]
    try:
        cfg = LocalSFTConfig.model_validate(data)
    except ValidationError as e:
        return None, [f"{path} → {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                      for err in e.errors()]
    return cfg, check_dataset(Path(cfg.dataset))


def train(cfg: LocalSFTConfig) -> None:  # pragma: no cover - needs a GPU and the training stack
    """Run QLoRA SFT and save the adapter to ``output_dir``."""
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    peft_config = None
    if cfg.trainer == "unsloth":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(cfg.base_model, max_seq_length=cfg.max_seq_length,
                                                             load_in_4bit=True)
        model = FastLanguageModel.get_peft_model(model, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                 lora_dropout=cfg.lora_dropout,
                                                 target_modules=cfg.target_modules, random_state=cfg.seed)
    else:
        import torch
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16 if cfg.bf16 else torch.float16)
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, quantization_config=quant, device_map="auto")
        tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.target_modules, task_type="CAUSAL_LM")
    dataset = load_dataset("json", data_files=cfg.dataset, split="train")
    args = SFTConfig(output_dir=cfg.output_dir, num_train_epochs=cfg.num_train_epochs,
                     per_device_train_batch_size=cfg.per_device_train_batch_size,
                     gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
                     warmup_ratio=cfg.warmup_ratio, bf16=cfg.bf16, seed=cfg.seed, logging_steps=10,
                     save_strategy="epoch", max_length=cfg.max_seq_length)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    trainer.train()
    trainer.save_model(cfg.output_dir)


def write_status(cfg: LocalSFTConfig, status: str, error: str | None = None) -> None:
    """``<output_dir>/status.json``, which the local backend polls."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "status.json").write_text(json.dumps({"status": status, "error": error}))


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: validate (``--check``) or train."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.local_sft", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--check", action="store_true", help="validate the config and dataset, then exit")
    args = parser.parse_args(argv)
    cfg, problems = load_config(args.config)
    if problems or cfg is None:
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    if args.check:
        print(f"ok: {cfg.trainer} QLoRA SFT of {cfg.base_model} on {cfg.dataset} "
              f"(r={cfg.lora_r}, {cfg.num_train_epochs} epochs) → {cfg.output_dir}")
        return 0
    try:  # pragma: no cover - training stack only on GPU machines
        write_status(cfg, "running")
        train(cfg)
    except ImportError as e:  # pragma: no cover
        write_status(cfg, "failed", f"missing training library: {e.name}")
        print(f"error: missing training library {e.name!r}: pip install trl peft bitsandbytes datasets "
              "(and unsloth for trainer 'unsloth') on a GPU machine", file=sys.stderr)
        return 3
    except Exception as e:  # pragma: no cover
        write_status(cfg, "failed", f"{type(e).__name__}: {e}")
        raise
    write_status(cfg, "succeeded")  # pragma: no cover
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
