"""Prompt embeddings: paraphrases land together, scenes apart; cached prompts never load the encoder."""
import pytest
import torch

from matrix_sim.models.prompt import PromptBank, SentenceEncoder
from matrix_sim.world.scenes import scene_catalog

from wm_helpers import HashEncoder, one_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()


def test_paraphrases_are_closer_than_other_scenes(encoder):
    catalog = scene_catalog()
    scenes = [catalog.parse(p) for p in ("drive desert by day", "walk snowfield at night in snow",
                                         "drive city at sunset in rain")]
    groups = [encoder.encode([s.prompt, *s.captions()[::20]]) for s in scenes]
    for i, own in enumerate(groups):
        within = (own @ own.T)[~torch.eye(len(own), dtype=torch.bool)].mean()
        for j, other in enumerate(groups):
            if i != j:
                assert within > (own @ other.T).mean() + 0.1


def test_embeddings_are_unit_vectors_and_free_text_finds_its_scene(encoder):
    vectors = encoder.encode(["a car on a sandy road under a blazing sun", "x"])
    assert vectors.shape == (2, 384)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(2), atol=1e-5)
    bank = PromptBank(encoder_factory=lambda: encoder)
    presets = scene_catalog().prompts
    assert bank.nearest("walking through a snowy forest at night", presets).startswith("walk")


def refuse_to_load():
    raise AssertionError("the encoder was loaded for a cached prompt")


def test_cached_prompts_do_not_load_the_encoder(tmp_path):
    texts = ["drive desert by day", "walk forest at night"]
    PromptBank({t: e for t, e in zip(texts, HashEncoder().encode(texts))}).save(tmp_path / "p.safetensors")
    bank = PromptBank.load(tmp_path / "p.safetensors")
    bank._encoder_factory = refuse_to_load
    assert torch.equal(bank.embed("  Drive DESERT by day "), HashEncoder().encode(texts[:1])[0])
    assert len(bank.subset(texts[1:])) == 1
