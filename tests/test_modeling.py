"""The MTCAE-DFER model: sizes, wiring of the four decoder modes, losses, attention paths, I/O."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from mtcae_test_utils import run_isolated, tiny_config, tiny_encoder_kwargs
from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification, VideoMAEConfig, VideoMAEModel

from modeling_mtcae import MTCAEConfig, MTCAEForVideoClassification, MTCAEModel


def _inputs(config, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    height, width = config.image_size
    return {
        "pixel_values": torch.randn(batch, config.num_frames, 3, height, width, generator=generator),
        "labels": torch.randint(0, config.num_labels, (batch,), generator=generator),
        "face_boxes": torch.rand(batch, config.num_frames, 4, generator=generator),
        "face_landmarks": torch.rand(batch, config.num_frames, config.num_landmarks, 2, generator=generator),
        "face_mask": torch.rand(batch, config.num_frames, generator=generator) > 0.3,
    }


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    return MTCAEForVideoClassification(tiny_config(**overrides))


def _grad_norm(module):
    return sum(p.grad.abs().sum().item() for p in module.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------ sizes and config
def test_paper_preset_parameter_counts_match_the_notebook():
    config = MTCAEConfig.from_preset("paper", num_labels=7)
    with torch.device("meta"):
        model = MTCAEForVideoClassification(config)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 9_800_935
    assert total == 313_659_623
    assert sum(p.numel() for p in model.mtcae.encoder.parameters()) == 303_858_688
    for decoder in model.mtcae.decoders.values():
        assert sum(p.numel() for p in decoder.parameters()) == 3_159_296
    assert config.num_tokens == 1568


def test_presets_build_and_differ():
    base = MTCAEConfig.from_preset("base", num_labels=8)
    tiny = MTCAEConfig.from_preset("tiny", num_labels=7, decoder_mode="parallel")
    figure = MTCAEConfig.from_preset("paper_figure")
    assert base.encoder_config.hidden_size == 768 and base.freeze_encoder
    assert tiny.decoder_mode == "parallel" and tiny.encoder_config.image_size == 56 and tiny.num_tokens == 392
    assert figure.projection_mode == "per_task" and figure.projection_norm and figure.projection_dim == 512
    with pytest.raises(ValueError, match="Unknown preset"):
        MTCAEConfig.from_preset("huge")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"decoder_mode": "stacked"}, "decoder_mode"),
        ({"projection_mode": "both"}, "projection_mode"),
        ({"task_order": ["expression", "face_detection"]}, "task_order"),
        ({"task_order": ["expression", "expression", "face_landmark"]}, "task_order"),
        ({"decoder_dropout": 1.0}, "decoder_dropout"),
        ({"loss_weight_expression": -1.0}, "loss_weight_expression"),
        ({"decoder_num_heads": 0}, "decoder_num_heads"),
        ({"encoder_config": {"num_frames": 5, "tubelet_size": 2}, "num_frames": 5}, "tubelet_size"),
        ({"encoder_config": {"image_size": 40}}, "patch_size"),
    ],
)
def test_invalid_configs_say_what_to_change(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_frame_count_must_agree_with_the_encoder():
    with pytest.raises(ValueError, match="num_frames=6 differs from encoder_config.num_frames=4"):
        MTCAEConfig(encoder_config=VideoMAEConfig(**tiny_encoder_kwargs()), num_frames=6)
    # from_preset keeps the two in step.
    assert MTCAEConfig.from_preset("tiny", num_frames=8).encoder_config.num_frames == 8


def test_config_round_trip_keeps_every_field(tmp_path):
    config = tiny_config(decoder_mode="fully_shared", task_order=["face_landmark", "face_detection", "expression"],
                         loss_weight_expression=2.0, projection_mode="per_task")
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["encoder_config"]["model_type"] == "videomae"
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, MTCAEConfig)
    assert isinstance(reloaded.encoder_config, VideoMAEConfig)
    without_path = lambda c: {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}  # noqa: E731
    assert without_path(reloaded) == without_path(config)


# ------------------------------------------------------------------------------ decoder wiring
def test_cascaded_expression_loss_reaches_all_three_decoders():
    model = _model(decoder_mode="cascaded")
    inputs = _inputs(model.config)
    output = model(inputs["pixel_values"], labels=inputs["labels"])  # expression loss only
    output.loss.backward()
    for name in ("face_detection", "face_landmark", "expression"):
        assert _grad_norm(model.mtcae.decoders[name]) > 0, name
    assert _grad_norm(model.face_detection_head) == 0  # heads of other tasks get nothing from CE


def test_cascade_order_is_configurable():
    model = _model(decoder_mode="cascaded", task_order=["expression", "face_landmark", "face_detection"])
    assert list(model.mtcae.query_sources.items()) == [
        ("expression", "projection"), ("face_landmark", "expression"), ("face_detection", "face_landmark")
    ]
    inputs = _inputs(model.config)
    model(inputs["pixel_values"], labels=inputs["labels"]).loss.backward()
    # Expression is first now: its loss cannot reach the decoders after it.
    assert _grad_norm(model.mtcae.decoders["face_detection"]) == 0
    assert _grad_norm(model.mtcae.decoders["expression"]) > 0


def test_parallel_decoders_are_independent():
    model = _model(decoder_mode="parallel").eval()
    pixel_values = _inputs(model.config)["pixel_values"]
    before = model(pixel_values)
    with torch.no_grad():
        for parameter in model.mtcae.decoders["face_detection"].parameters():
            parameter.add_(torch.randn_like(parameter))
    after = model(pixel_values)
    torch.testing.assert_close(after.logits, before.logits, rtol=0, atol=0)
    torch.testing.assert_close(after.face_landmarks, before.face_landmarks, rtol=0, atol=0)
    assert not torch.allclose(after.face_boxes, before.face_boxes)

    # The same perturbation in cascaded mode does change the expression output.
    cascaded = _model(decoder_mode="cascaded").eval()
    before = cascaded(pixel_values).logits
    with torch.no_grad():
        for parameter in cascaded.mtcae.decoders["face_detection"].parameters():
            parameter.add_(torch.randn_like(parameter))
    assert not torch.allclose(cascaded(pixel_values).logits, before)


def test_single_task_has_no_face_heads():
    model = _model(decoder_mode="single_task")
    assert list(model.mtcae.decoders) == ["expression"]
    assert model.face_detection_head is None and model.face_landmark_head is None
    assert not any("face" in name for name, _ in model.named_parameters())
    inputs = _inputs(model.config)
    output = model(**inputs)
    assert output.face_boxes is None and output.face_landmarks is None
    assert output.loss_face_boxes is None
    torch.testing.assert_close(output.loss, model.config.loss_weight_expression * output.loss_expression)


def test_fully_shared_has_a_shared_decoder_feeding_all_tasks():
    model = _model(decoder_mode="fully_shared")
    assert model.mtcae.query_sources == {
        "shared": "projection", "face_detection": "shared", "face_landmark": "shared", "expression": "shared"
    }
    inputs = _inputs(model.config)
    model(inputs["pixel_values"], labels=inputs["labels"]).loss.backward()
    assert _grad_norm(model.mtcae.decoders["shared"]) > 0
    assert _grad_norm(model.mtcae.decoders["face_detection"]) == 0


def test_per_task_projection_and_wider_decoders():
    model = _model(projection_mode="per_task", projection_norm=True, decoder_hidden_size=24)
    assert set(model.mtcae.projections) == {"face_detection", "face_landmark", "expression"}
    # Only the first decoder is queried by E, so only it maps 16 -> 24.
    assert model.mtcae.decoders["face_detection"].query_projection is not None
    assert model.mtcae.decoders["expression"].query_projection is None
    output = model(**_inputs(model.config))
    assert torch.isfinite(output.loss)


# ------------------------------------------------------------------------------ losses
def test_total_loss_is_the_weighted_sum():
    model = _model(loss_weight_face_boxes=0.25, loss_weight_face_landmarks=0.75, loss_weight_expression=2.0)
    output = model(**_inputs(model.config))
    expected = 0.25 * output.loss_face_boxes + 0.75 * output.loss_face_landmarks + 2.0 * output.loss_expression
    torch.testing.assert_close(output.loss, expected)
    torch.testing.assert_close(output.loss_expression, torch.nn.functional.cross_entropy(
        output.logits, _inputs(model.config)["labels"]))


def test_masked_frames_change_nothing():
    model = _model()
    inputs = _inputs(model.config)
    mask = inputs["face_mask"]
    mask[:, 0] = False
    mask[:, 1] = True
    base = model(**inputs)
    grads = torch.autograd.grad(base.loss, list(model.parameters()), allow_unused=True)

    corrupted = copy.deepcopy(inputs)
    corrupted["face_boxes"][~mask] = float("nan")
    corrupted["face_landmarks"][~mask] = 1e6
    other = model(**corrupted)
    torch.testing.assert_close(other.loss, base.loss, rtol=0, atol=0)
    other_grads = torch.autograd.grad(other.loss, list(model.parameters()), allow_unused=True)
    for first, second in zip(grads, other_grads):
        if first is not None:
            torch.testing.assert_close(first, second, rtol=0, atol=0)

    # Unmasked frames do count, and the MSE is the mean over the unmasked frames only.
    expected = ((base.face_boxes - inputs["face_boxes"]) ** 2)[mask].mean()
    torch.testing.assert_close(base.loss_face_boxes, expected)


def test_no_face_in_any_frame_gives_zero_face_loss_with_gradients_flowing():
    model = _model()
    inputs = _inputs(model.config)
    inputs["face_mask"][:] = False
    output = model(**inputs)
    assert output.loss_face_boxes.item() == 0.0 and output.loss_face_landmarks.item() == 0.0
    output.loss.backward()
    assert _grad_norm(model.expression_head) > 0


def test_labels_only_keep_all_parameters_in_the_graph():
    model = _model()
    inputs = _inputs(model.config)
    output = model(inputs["pixel_values"], labels=inputs["labels"])
    output.loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []  # DDP needs every parameter to take part


def test_bad_inputs_raise_clear_errors():
    model = _model()
    inputs = _inputs(model.config)
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        model(inputs["pixel_values"][:, :3])
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        model(inputs["pixel_values"][:, :, :1])
    with pytest.raises(ValueError, match="labels must be class ids"):
        model(inputs["pixel_values"], labels=torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="face target shape"):
        model(inputs["pixel_values"], face_boxes=torch.zeros(2, 3, 4), face_landmarks=inputs["face_landmarks"])


# ------------------------------------------------------------------------------ attention maps, freezing
def test_output_attentions_are_probabilities_per_encoder_layer_and_per_decoder_block():
    model = _model(attn_implementation="eager").eval()
    config = model.config
    output = model(_inputs(config)["pixel_values"], output_attentions=True, output_hidden_states=True)
    tokens, encoder = config.num_tokens, config.encoder_config
    assert len(output.attentions) == encoder.num_hidden_layers
    assert output.attentions[0].shape == (2, encoder.num_attention_heads, tokens, tokens)
    assert list(output.decoder_cross_attentions) == ["face_detection", "face_landmark", "expression"]
    for name, maps in output.decoder_cross_attentions.items():
        assert len(maps) == config.decoder_num_layers, name
        assert maps[0].shape == (2, config.decoder_num_heads, tokens, tokens)
        torch.testing.assert_close(maps[-1].sum(-1), torch.ones(2, config.decoder_num_heads, tokens))
    torch.testing.assert_close(output.attentions[-1].sum(-1), torch.ones(2, encoder.num_attention_heads, tokens))
    assert len(output.hidden_states) == encoder.num_hidden_layers + 1


def test_sdpa_returns_no_attention_maps_as_in_transformers():
    model = _model().eval()  # sdpa, the default: like VideoMAE, no maps
    output = model(_inputs(model.config)["pixel_values"], output_attentions=True)
    assert output.attentions == () and all(maps == () for maps in output.decoder_cross_attentions.values())


def test_frozen_encoder_gets_no_gradients():
    frozen = _model(freeze_encoder=True)
    inputs = _inputs(frozen.config)
    frozen(**inputs).loss.backward()
    assert all(p.grad is None for p in frozen.mtcae.encoder.parameters())
    assert _grad_norm(frozen.mtcae.projection) > 0

    trained = _model(freeze_encoder=False)
    trained(**inputs).loss.backward()
    assert _grad_norm(trained.mtcae.encoder) > 0


def test_save_load_round_trip(tmp_path):
    model = _model(freeze_encoder=True, id2label={0: "a", 1: "b", 2: "c"}).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_mtcae.MTCAEConfig",
        "AutoModel": "modeling_mtcae.MTCAEModel",
        "AutoModelForVideoClassification": "modeling_mtcae.MTCAEForVideoClassification",
    }
    assert {"model.safetensors", "modeling_mtcae.py", "configuration_mtcae.py"} <= {p.name for p in tmp_path.iterdir()}
    reloaded = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, MTCAEForVideoClassification)
    assert reloaded.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert not any(p.requires_grad for p in reloaded.mtcae.encoder.parameters())
    pixel_values = _inputs(model.config)["pixel_values"]
    torch.testing.assert_close(reloaded(pixel_values).logits, model(pixel_values).logits, rtol=0, atol=0)
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(base, MTCAEModel)
    torch.testing.assert_close(base(pixel_values).last_hidden_state,
                               model.mtcae(pixel_values).last_hidden_state, rtol=0, atol=0)


def test_remote_code_loads_without_this_package(tmp_path):
    model = _model(decoder_mode="cascaded").eval()
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    hub_copy = tmp_path / "elsewhere" / "mtcae-tiny"
    shutil.copytree(saved, hub_copy)
    pixel_values = _inputs(model.config)["pixel_values"]
    torch.save(pixel_values, tmp_path / "pixel_values.pt")
    expected = model(pixel_values)
    torch.save({"logits": expected.logits, "boxes": expected.face_boxes,
                "hidden": model.mtcae(pixel_values).last_hidden_state}, tmp_path / "expected.pt")
    run_isolated(
        f"""
        import importlib.util, torch
        from transformers import AutoModel, AutoModelForVideoClassification
        try:
            import modeling_mtcae
            raise SystemExit("modeling_mtcae must not be importable here")
        except ImportError:
            pass
        folder = {str(hub_copy)!r}
        model = AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        pixel_values = torch.load({str(tmp_path / 'pixel_values.pt')!r})
        expected = torch.load({str(tmp_path / 'expected.pt')!r})
        with torch.no_grad():
            output = model(pixel_values)
            torch.testing.assert_close(output.logits, expected["logits"], rtol=0, atol=0)
            torch.testing.assert_close(output.face_boxes, expected["boxes"], rtol=0, atol=0)
            torch.testing.assert_close(base(pixel_values).last_hidden_state, expected["hidden"], rtol=0, atol=0)
            # The attention interface works on the downloaded code: switch at run time, both ways.
            model.set_attn_implementation("eager")
            eager = model(pixel_values, output_attentions=True)
            assert model.mtcae.encoder.config._attn_implementation == "eager"
            assert len(eager.attentions) == 2 and len(eager.decoder_cross_attentions["expression"]) == 2
            torch.testing.assert_close(eager.logits, expected["logits"], rtol=1e-5, atol=1e-5)
            model.set_attn_implementation("sdpa")
            torch.testing.assert_close(model(pixel_values).logits, expected["logits"], rtol=0, atol=0)
            # Precomputed encoder tokens (a feature cache) give the same logits.
            tokens = model.encode(pixel_values)
            torch.testing.assert_close(model(encoder_outputs=tokens).logits, expected["logits"], rtol=0, atol=0)
        print("ok")
        """,
        cwd=tmp_path,
    )


# ------------------------------------------------------------------------------ pretrained encoders
def _videomae_reference(tmp_path, cls, **config_overrides):
    torch.manual_seed(1)
    config = VideoMAEConfig(**tiny_encoder_kwargs(**config_overrides), num_labels=3)
    reference = cls(config).eval()
    folder = tmp_path / cls.__name__
    reference.save_pretrained(folder)
    return reference, folder


def test_videomae_checkpoint_loads_into_the_encoder_and_matches_transformers(tmp_path):
    reference, folder = _videomae_reference(tmp_path, VideoMAEModel)
    model = _model(seed=5).eval()
    report = model.load_encoder_weights(str(folder))
    assert report == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    pixel_values = _inputs(model.config)["pixel_values"]
    ours = model.mtcae(pixel_values).encoder_last_hidden_state
    torch.testing.assert_close(ours, reference(pixel_values).last_hidden_state, rtol=0, atol=0)


@pytest.mark.parametrize("class_name", ["VideoMAEForVideoClassification", "VideoMAEForPreTraining"])
def test_task_checkpoints_load_with_their_extra_weights_reported(tmp_path, class_name):
    import transformers

    reference, folder = _videomae_reference(tmp_path, getattr(transformers, class_name))
    model = MTCAEForVideoClassification.from_videomae(str(folder), preset="tiny", num_labels=4,
                                                      hub_kwargs={"local_files_only": True}).eval()
    report = model.encoder_loading_report
    assert report["missing_keys"] == [] and report["mismatched_keys"] == []
    assert report["unexpected_keys"], "the head / MAE decoder weights should be reported as unused"
    assert model.config.encoder_config.hidden_size == 32 and model.config.num_labels == 4
    pixel_values = torch.randn(1, 4, 3, 32, 32)
    torch.testing.assert_close(
        model.mtcae(pixel_values).encoder_last_hidden_state,
        reference.videomae(pixel_values).last_hidden_state, rtol=0, atol=0,
    )


def test_mismatched_encoder_checkpoint_is_refused(tmp_path):
    _, folder = _videomae_reference(tmp_path, VideoMAEModel, hidden_size=48, num_attention_heads=4)
    model = _model()
    with pytest.raises(ValueError, match="hidden_size: checkpoint 48 vs config 32"):
        model.load_encoder_weights(str(folder))
    with pytest.raises(ValueError, match="mtcae-convert-videomae"):
        model.load_encoder_weights(str(tmp_path / "checkpoint.pth"))


def test_state_dict_with_prefix_loads(tmp_path):
    reference, _ = _videomae_reference(tmp_path, VideoMAEModel)
    model = _model()
    state = {f"videomae.{k}": v for k, v in reference.state_dict().items()}
    state["videomae.fc_norm.weight"] = torch.ones(32)
    report = model.load_encoder_weights(state)
    assert report["missing_keys"] == [] and report["unexpected_keys"] == ["fc_norm.weight"]


# ------------------------------------------------------------------------------ data-dependent init
def test_pca_patch_embedding_whitens_the_tubelets():
    # Correlated pixels (smooth random images): the PCA-initialised tubelet embedding must turn the clips'
    # tubelets into centred, decorrelated, unit-variance tokens; the random init does not.
    model = _model(encoder_config=tiny_encoder_kwargs(patch_size=8))  # 2 x 8 x 8 x 3 = 384 values -> 32 dims
    generator = torch.Generator().manual_seed(0)
    coarse = torch.randn(24, model.config.num_frames, 3, 8, 8, generator=generator)
    pixels = torch.nn.functional.interpolate(coarse.flatten(0, 1), size=(32, 32), mode="bilinear")
    pixels = pixels.unflatten(0, (24, -1))
    pixels = pixels + 0.05 * torch.randn(pixels.shape, generator=generator)

    def token_covariance():
        conv = model.mtcae.encoder.embeddings.patch_embeddings.projection
        with torch.no_grad():
            tokens = conv(pixels.permute(0, 2, 1, 3, 4)).flatten(2).transpose(1, 2).reshape(-1, conv.out_channels)
        return tokens.mean(0), torch.cov(tokens.T)

    _, before = token_covariance()
    explained = model.init_patch_embedding_from_data(pixels, eps=0.0)
    mean, after = token_covariance()
    identity = torch.eye(after.shape[0])
    assert (before - before.diag().diag()).abs().max() > 0.05 * before.diag().mean()  # random init: correlated
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-4, rtol=0)
    torch.testing.assert_close(after, identity, atol=1e-3, rtol=0)
    assert 0.5 < float(explained) <= 1.0  # smooth images: the first 32 directions hold most of the variance
    # The model still runs and trains from there.
    model(pixel_values=pixels[:2], labels=torch.tensor([0, 1])).loss.backward()


def test_pca_patch_embedding_refuses_too_little_data_or_too_wide_tokens():
    model = _model(encoder_config=tiny_encoder_kwargs(patch_size=8))
    with pytest.raises(ValueError, match="at least 384 tubelets"):
        model.init_patch_embedding_from_data(torch.randn(1, 4, 3, 32, 32))
    wide = _model(encoder_config=tiny_encoder_kwargs(patch_size=2, hidden_size=32, num_attention_heads=4))
    with pytest.raises(ValueError, match="hidden_size <= tubelet size"):
        wide.init_patch_embedding_from_data(torch.randn(8, 4, 3, 32, 32))


def test_saved_weights_are_as_readable_as_the_saved_config(tmp_path):
    """safetensors writes 0600 files (safetensors#782); save_pretrained gives them the umask's mode (POSIX)."""
    import os
    import stat

    model = MTCAEForVideoClassification(tiny_config())
    previous = os.umask(0o022)
    try:
        model.save_pretrained(tmp_path / "saved")
    finally:
        os.umask(previous)

    def mode(name):
        return stat.S_IMODE((tmp_path / "saved" / name).stat().st_mode)

    assert mode("config.json") == 0o644
    assert mode("model.safetensors") == 0o644
