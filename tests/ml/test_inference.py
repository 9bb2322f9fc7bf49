"""Batch inference tolerates bad images and routes with the checkpoint's thresholds."""

import numpy as np
import torch

from ml.factory import create_model, preprocess_config
from ml.inference import Predictor


def _predictor(thresholds=None):
    torch.manual_seed(0)
    model = create_model(num_classes=3, weights="none")
    return Predictor(
        model,
        preprocess_config(input_size=32),
        ["a", "b", "c"],
        temperature=2.0,
        thresholds=thresholds,
    )


def test_a_corrupt_image_does_not_block_the_batch():
    good = np.full((20, 20), 128, np.uint8)
    result = _predictor().predict([good, b"garbage", good, good], batch_size=2)
    assert result.probs.shape == (4, 3)
    assert list(result.errors) == [1]
    assert np.isnan(result.probs[1]).all()
    assert np.allclose(result.probs[[0, 2, 3]].sum(1), 1.0)


def test_route_never_auto_labels_a_failed_image():
    predictor = _predictor(thresholds=[0.0, 0.0, 0.0])  # accept everything that decodes
    probs = predictor.predict([np.zeros((8, 8), np.uint8), b"bad"]).probs
    labels, conf, auto = predictor.route(probs)
    assert auto.tolist() == [True, False]
    assert labels[1] == -1


def test_temperature_is_applied():
    hot, cold = _predictor(), _predictor()
    cold.temperature = 1.0
    img = [np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)]
    assert hot.predict(img).probs.max() < cold.predict(img).probs.max()
