"""LightningDataModules for HotpotQA and 2WikiMultiHopQA (README.md, "Data").

Each split is read once, its prompts written and tokenised in one cached ``Dataset.map``; every
row keeps its record's columns, so each batch (``PromptCollator``) carries its ``records``
beside ``input_ids``/``attention_mask``/``index`` and the stage modules need nothing else. With
``rationales`` set (stage 1), training and the first validation loader serve kept teacher
rationales as ``labels``; the second validation loader serves every validation question.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

import datasets
import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from lm_guided_cot.data.batches import PromptCollator
from lm_guided_cot.data.loaders import EpochPosition, EpochSeededRandomSampler, ResumableDataLoader
from lm_guided_cot.data.prompts import PromptBuilder, PromptConfig
from lm_guided_cot.data.readers import read_split
from lm_guided_cot.data.records import HOTPOTQA, TWOWIKI, QARecord
from lm_guided_cot.data.targets import IGNORE_INDEX, encode_targets
from lm_guided_cot.errors import ConfigurationError, InputError, MissingFileError, check_at_least
from lm_guided_cot.hparams import as_dataclass, save_hparams
from lm_guided_cot.model_loading import load_tokenizer
from lm_guided_cot.paths import expand_path
from lm_guided_cot.rationales import RationaleConfig, build_rationales, read_kept

log = logging.getLogger(__name__)

Split = Literal["train", "validation", "test"]


class MultiHopQADataModule(L.LightningDataModule):
    """Train/validation/test splits of a multi-hop QA benchmark as tokenised prompt batches.

    Args:
        tokenizer: the small LM's tokenizer: a hub id or a local folder (``lmcot fit`` links
            it to ``model.init_args.model``; ``lmcot evaluate`` sets one per checkpoint).
        train: training split: a ``.json``/``.jsonl`` file, a dataset folder or a hub id.
            ``$LMCOT_DATA`` is expanded (default ``../shared/data``).
        validation: validation split, same forms.
        test: test split, same forms.
        hub_config: dataset configuration passed to ``load_dataset`` (e.g. ``distractor``).
        aliases: 2Wiki ``id_aliases.json`` adding gold aliases (through ``answer_id``).
        prompt: how the question and the context become the small LM's input.
        batch_size: questions per training batch (per device; at least 1).
        eval_batch_size: questions per validation/test batch (at least 1); defaults to
            ``batch_size``.
        num_workers: DataLoader worker processes (0: load in the main process).
        seed: seed of the training shuffle (single process; DDP uses ``seed_everything``'s).
        max_examples: keep only the first N records of each split (quick runs, smoke tests);
            ``None`` keeps them all. At least 1: 0 would leave an empty split, and a run over
            it would do nothing and still succeed.
        max_eval_examples: the same for validation and test alone (default: ``max_examples``;
            at least 1 when set, ``null`` in YAML falls back to ``max_examples``).
        skip_invalid: leave out records that fail the checks (counted and logged) instead of
            stopping with an error naming file, record and field.
        padding_side: side on which prompts are padded; ``left`` (the default) is what the
            stage modules expect (causal generation continues from the right edge).
        cache_dir: where ``datasets`` keeps Arrow files; default: its own cache.
        rationales: stage 1's teacher rationales (built when missing) as training targets.
        max_target_tokens: longest rationale target in tokens (EOS included; at least 1); longer
            ones are cut and get no EOS (the model is not taught to stop mid-sentence).
    """

    source: ClassVar[str] = HOTPOTQA

    def __init__(
        self,
        tokenizer: str | None = None,
        train: str | None = None,
        validation: str | None = None,
        test: str | None = None,
        hub_config: str | None = None,
        aliases: str | None = None,
        prompt: PromptConfig = PromptConfig(),  # noqa: B008 (copied below, never mutated)
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        max_examples: int | None = None,
        max_eval_examples: int | None = None,
        skip_invalid: bool = False,
        padding_side: Literal["left", "right"] = "left",
        cache_dir: str | None = None,
        rationales: RationaleConfig | None = None,
        max_target_tokens: int = 256,
    ) -> None:
        name = type(self).__name__
        check_at_least(f"{name}.batch_size", batch_size, 1)
        check_at_least(f"{name}.eval_batch_size", eval_batch_size, 1)
        check_at_least(f"{name}.num_workers", num_workers, 0)
        check_at_least(f"{name}.max_examples", max_examples, 1)
        check_at_least(f"{name}.max_eval_examples", max_eval_examples, 1)
        check_at_least(f"{name}.max_target_tokens", max_target_tokens, 1)
        super().__init__()
        prompt = as_dataclass(PromptConfig, prompt, f"{name}.prompt")
        if rationales is not None:
            rationales = as_dataclass(RationaleConfig, rationales, f"{name}.rationales")
        save_hparams(self, prompt=prompt, rationales=rationales)
        self.tokenizer_name = tokenizer
        self.paths: dict[str, str | None] = {"train": train, "validation": validation, "test": test}
        self.prompt_config = prompt
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.max_examples = max_examples
        self.max_eval_examples = (
            max_eval_examples if max_eval_examples is not None else max_examples
        )
        self.skip_invalid = skip_invalid
        self.padding_side = padding_side
        self.cache_dir = cache_dir
        self.hub_config = hub_config
        self.aliases = aliases
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._records: dict[str, datasets.Dataset] = {}
        self._tokenized: dict[str, datasets.Dataset] = {}
        self._targets: dict[str, datasets.Dataset] = {}
        self.skipped: dict[str, list[str]] = {}
        self.train_position = EpochPosition()
        self.rationales = rationales
        self.max_target_tokens = max_target_tokens

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            if self.tokenizer_name is None:
                raise ConfigurationError(
                    f"{type(self).__name__}: no tokenizer configured (data.init_args.tokenizer)"
                )
            self._tokenizer = load_tokenizer(self.tokenizer_name, self.padding_side)
        return self._tokenizer

    # ---- stage 1: teacher rationales --------------------------------------------------------

    def rationale_splits(self) -> list[str]:
        """The splits that get teacher rationales (those configured of train and validation)."""
        return (
            [s for s in ("train", "validation") if self.paths[s] is not None]
            if self.rationales
            else []
        )

    def prepare_data(self) -> None:
        """Build missing teacher-rationale files (Lightning runs this on one process per node)."""
        for split in self.rationale_splits():
            if not self.rationales.path(split).exists():
                self.build_rationales([split])

    def build_rationales(self, splits: list[str] | None = None) -> dict[str, dict]:
        """Ask the teacher for rationales on the given splits and write their files."""
        if not self.rationales:
            raise ConfigurationError(
                f"{type(self).__name__}: no 'rationales' settings are configured"
            )
        summaries = {}
        for split in splits or self.rationale_splits():
            records = (QARecord.from_row(row) for row in self.records(split))
            summaries[split] = build_rationales(records, self.rationales, split)
        return summaries

    def _load_targets(self, split: str) -> None:
        path = self.rationales.path(split)
        if not path.exists():
            raise MissingFileError(
                f"{path}: teacher rationales for the {split} split are missing; build them with "
                "`lmcot rationales -c CONFIG` (fit builds them itself in prepare_data)"
            )
        index_of = {rid: i for i, rid in enumerate(self._records[split]["id"])}
        rows = read_kept(path)
        kept = [row for row in rows if row["id"] in index_of]
        outside = list(dict.fromkeys(row["id"] for row in rows if row["id"] not in index_of))
        if outside:
            option = "max_examples" if split == "train" else "max_eval_examples"
            limit = getattr(self, option)
            capped = f"; {option} caps it at {limit}" if limit is not None else ""
            log.warning(
                "%s: %d kept rationale(s) of %d question id(s) belong to no record of the %s "
                "split (%d questions%s) and are left out; first ids: %s",
                path,
                len(rows) - len(kept),
                len(outside),
                split,
                len(index_of),
                capped,
                ", ".join(outside[:5]),
            )
        if not kept:
            raise InputError(f"{path}: no kept rationale belongs to a record of the {split} split")
        labels = encode_targets(
            self.tokenizer, [row["rationale"] for row in kept], self.max_target_tokens
        )
        # One row per kept rationale: its question's prompt row (record columns included) and
        # the rationale's ids, so that a batch of targets is as self-contained as one of prompts.
        prompts = self.tokenized(split).select([index_of[row["id"]] for row in kept])
        self._targets[split] = prompts.add_column(
            "labels", [[t for t in row if t != IGNORE_INDEX] for row in labels.tolist()]
        ).with_format("python")

    def targets(self, split: Split) -> datasets.Dataset:
        """Kept teacher rationales of a split: prompt rows (``index`` into records) with ``labels``."""
        if split not in self._targets:
            self.records(split)
            self._load_targets(split)
        return self._targets[split]

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": ("train", "validation"),
            "validate": ("validation",),
            "test": ("test",),
            "predict": ("test",),
        }.get(stage or "", ("train", "validation", "test"))
        for split in wanted:
            if self.paths[split] is not None:
                self.tokenized(split)
            if split in self.rationale_splits():
                self.targets(split)  # fail early when the rationale file is missing or empty

    def _load(self, split: str) -> None:
        path = expand_path(self.paths[split])
        result = read_split(
            path,
            self.source,
            split=split,
            hub_config=self.hub_config,
            skip_invalid=self.skip_invalid,
            aliases_path=expand_path(self.aliases) if self.aliases else None,
            cache_dir=self.cache_dir,
        )
        records = result.dataset
        limit = self.max_examples if split == "train" else self.max_eval_examples
        if limit is not None:
            records = records.select(range(min(limit, len(records))))
        self.skipped[split] = result.skipped
        self._records[split] = records

    def _tokenize(self, records: datasets.Dataset) -> datasets.Dataset:
        builder = PromptBuilder(self.prompt_config, self.tokenizer)
        tokenizer = self.tokenizer

        def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
            rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
            prompts = [builder.build(QARecord.from_row(row)) for row in rows]
            encoded = tokenizer(
                prompts,
                truncation=self.prompt_config.max_tokens is not None,
                max_length=self.prompt_config.max_tokens,
            )
            return {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "index": indices,
            }

        # The record's columns stay beside its prompt: batches carry their records.
        tokenized = records.map(
            encode,
            batched=True,
            with_indices=True,
            desc="writing and tokenising prompts",
        )
        return tokenized.with_format("python")

    def records(self, split: Split) -> datasets.Dataset:
        """The checked records of a split (Arrow-backed; ``QARecord.from_row`` on a row)."""
        if split not in self._records:
            if self.paths[split] is None:
                raise ConfigurationError(
                    f"{type(self).__name__}.{split} is not set: no '{split}' split was configured "
                    f"(give --data.init_args.{split} FILE)"
                )
            self._load(split)
        return self._records[split]

    def record(self, split: Split, index: int) -> QARecord:
        """One record of a split as a typed object."""
        return QARecord.from_row(self.records(split)[int(index)])

    def tokenized(self, split: Split) -> datasets.Dataset:
        """The tokenised prompts of a split: the record's columns plus ``input_ids``,
        ``attention_mask`` and ``index``."""
        if split not in self._tokenized:
            self._tokenized[split] = self._tokenize(self.records(split))
        return self._tokenized[split]

    @property
    def collate(self) -> PromptCollator:
        """Pads rows of ``tokenized`` or ``targets`` into a batch (records included)."""
        return PromptCollator(self.tokenizer)

    def _loader(self, split: Split, shuffle: bool, targets: bool = False) -> DataLoader:
        dataset = self.targets(split) if targets else self.tokenized(split)
        settings = dict(
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            # Its own generator: making an iterator draws a seed, and it must not come from
            # the global RNG, which rollouts sample from (a resumed run would drift by one).
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            collate_fn=self.collate,
            persistent_workers=self.num_workers > 0,
        )
        if shuffle:  # the training loader
            return ResumableDataLoader(
                dataset,
                sampler=EpochSeededRandomSampler(dataset, self.seed),
                position=self.train_position,
                **settings,
            )
        return DataLoader(dataset, **settings)

    def state_dict(self) -> dict[str, int]:
        """The training loader's place in its epoch (saved in checkpoints)."""
        return self.train_position.state_dict()

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.train_position.load_state_dict(state_dict)

    def eval_dataloader(self, split: Split, batch_size: int | None = None) -> DataLoader:
        """Prompt batches of every question of ``split``, in order (for evaluation outside a
        Trainer)."""
        loader = self._loader(split, shuffle=False)
        if batch_size is None:
            return loader
        return DataLoader(loader.dataset, batch_size=batch_size, collate_fn=self.collate)

    def with_tokenizer(self, tokenizer: str) -> MultiHopQADataModule:
        """The same splits and prompt settings, written for another small LM's tokenizer.

        Records already read are shared (they do not depend on the tokenizer)."""
        clone = type(self)(**{**self.hparams, "tokenizer": tokenizer})
        clone._records = dict(self._records)
        clone.skipped = dict(self.skipped)
        return clone

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, targets="train" in self.rationale_splits())

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        if "validation" in self.rationale_splits():
            return [
                self._loader("validation", False, targets=True),
                self._loader("validation", False),
            ]
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class HotpotQADataModule(MultiHopQADataModule):
    """HotpotQA (distractor setting): ``hotpot_qa`` JSON lines, the official JSON list, or the hub."""

    source: ClassVar[str] = HOTPOTQA


class TwoWikiMultiHopQADataModule(MultiHopQADataModule):
    """2WikiMultiHopQA: the official JSON list (or JSON lines), a folder or a hub id."""

    source: ClassVar[str] = TWOWIKI
