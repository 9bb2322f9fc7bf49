"""The offline ImageNet weights land in timm's EfficientNet-Lite0 correctly."""

import numpy as np
import pytest
import torch

from ml.inference import Predictor
from ml.weights import WeightMappingError, map_state_dict

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def imagenet() -> Predictor:
    return Predictor.imagenet(num_threads=2)


def test_chelsea_is_a_cat(imagenet):
    probs, errors = imagenet.predict([skimage_data.chelsea()])
    assert errors == {}
    assert int(np.argmax(probs[0])) in range(281, 286)  # tabby, tiger cat, Persian, ..., Egyptian


def test_coffee_is_espresso(imagenet):
    probs, _ = imagenet.predict([skimage_data.coffee()])
    assert int(np.argmax(probs[0])) == 967
    assert imagenet.class_names[967] == "espresso"


def test_mapping_rejects_a_shape_mismatch():
    source = {"a.weight": torch.zeros(3, 4), "a.bias": torch.zeros(3)}
    target = {"x.weight": torch.zeros(3, 5), "x.bias": torch.zeros(3)}
    with pytest.raises(WeightMappingError, match="tensor #0"):
        map_state_dict(source, target)


def test_mapping_rejects_a_different_tensor_count():
    source = {"a.weight": torch.zeros(3)}
    target = {"x.weight": torch.zeros(3), "x.bias": torch.zeros(3)}
    with pytest.raises(WeightMappingError, match="1 tensors but the model expects 2"):
        map_state_dict(source, target)


def test_mapping_ignores_num_batches_tracked_on_either_side():
    source = {"bn.weight": torch.ones(2), "bn.num_batches_tracked": torch.tensor(5)}
    target = {"b.weight": torch.zeros(2)}
    assert list(map_state_dict(source, target)) == ["b.weight"]
