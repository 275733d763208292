"""The compute format: bfloat16 on a CPU only where it measures faster, and an override that is checked."""
import pytest
import torch

import matrix_sim.device as device

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_race(monkeypatch):
    monkeypatch.delenv(device.DTYPE_ENV, raising=False)
    device.cpu_bf16_is_faster.cache_clear()
    yield
    device.cpu_bf16_is_faster.cache_clear()


def race(monkeypatch, native: bool, fp32_s: float, bf16_s: float) -> list:
    timed = []
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native)

    def seconds(dtype):
        timed.append(dtype)
        return {torch.float32: fp32_s, torch.bfloat16: bf16_s}[dtype]

    monkeypatch.setattr(device, "_matmul_seconds", seconds)
    return timed


def test_bf16_is_chosen_where_it_wins_the_race(monkeypatch):
    race(monkeypatch, native=True, fp32_s=2e-3, bf16_s=1e-3)
    assert device.compute_dtype(CPU) == torch.bfloat16


def test_training_on_a_cpu_stays_float32_where_inference_takes_bf16(monkeypatch):
    timed = race(monkeypatch, native=True, fp32_s=2e-3, bf16_s=1e-3)
    assert device.compute_dtype(CPU, training=True) == torch.float32 and timed == []
    with device.autocast(CPU, training=True):
        assert not torch.is_autocast_enabled("cpu")
    assert device.describe(CPU, training=True) == "CPU (float32)" and device.describe(CPU) == "CPU (bfloat16)"
    monkeypatch.setenv(device.DTYPE_ENV, "bfloat16")                    # the override still measures one against the other
    assert device.compute_dtype(CPU, training=True) == torch.bfloat16


def test_float32_is_kept_where_bf16_loses_or_barely_wins(monkeypatch):
    race(monkeypatch, native=True, fp32_s=0.42e-3, bf16_s=0.75e-3)       # a CPU with native bf16
    assert device.compute_dtype(CPU) == torch.float32
    device.cpu_bf16_is_faster.cache_clear()
    race(monkeypatch, native=True, fp32_s=1.0e-3, bf16_s=0.95e-3)        # inside the margin
    assert device.compute_dtype(CPU) == torch.float32


def test_no_race_without_native_bf16(monkeypatch):
    timed = race(monkeypatch, native=False, fp32_s=9.0, bf16_s=1e-6)
    assert device.compute_dtype(CPU) == torch.float32 and timed == []


def test_the_race_runs_once_per_process(monkeypatch):
    timed = race(monkeypatch, native=True, fp32_s=2e-3, bf16_s=1e-3)
    for _ in range(3):
        device.compute_dtype(CPU)
    assert timed == [torch.float32, torch.bfloat16]


def test_the_real_race_times_both_formats():
    assert device._matmul_seconds(torch.float32) > 0 and device._matmul_seconds(torch.bfloat16) > 0


def test_override_wins_and_a_bad_one_is_a_clear_error(monkeypatch):
    race(monkeypatch, native=True, fp32_s=2e-3, bf16_s=1e-3)
    monkeypatch.setenv(device.DTYPE_ENV, "float32")
    assert device.compute_dtype(CPU) == torch.float32
    with device.autocast(CPU):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setenv(device.DTYPE_ENV, "bfloat16")
    with device.autocast(CPU):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv(device.DTYPE_ENV, "half")
    with pytest.raises(ValueError, match="MATRIX_SIM_DTYPE='half'"):
        device.compute_dtype(CPU)


def test_the_game_leaves_one_core_to_the_display_and_encoder(monkeypatch):
    for cores, threads in ((1, 1), (2, 1), (16, 15)):
        monkeypatch.setattr(device, "cpu_cores", lambda: cores)
        assert device.game_threads(CPU) == threads
    assert device.game_threads(CPU, requested=2) == 2
    assert device.game_threads(torch.device("cuda")) is None            # torch's own choice on a GPU
