import pytest
import torch

from scarce.device import pick_device
from scarce.errors import UserError


@pytest.mark.parametrize("gpu", [True, False])
def test_auto_is_the_gpu_when_there_is_one(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert pick_device() == pick_device("auto") == ("cuda" if gpu else "cpu")
    assert pick_device("cpu") == "cpu"


def test_cuda_without_a_gpu_names_the_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="--device cuda"):
        pick_device("cuda")
    with pytest.raises(UserError, match="train.device=cuda"):
        pick_device("cuda", "train.device=cuda but no CUDA device is available")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("cuda") == "cuda"
