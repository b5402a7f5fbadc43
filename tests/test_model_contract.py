"""The transformers model contract, in the style of transformers' `ModelTesterMixin` (issue 11).

`MTCAEModelTester` builds tiny configs (4 frames of 32 x 32 -> 8 tokens, a 2-layer encoder, 2-block
decoders) and inputs; `TestMTCAEModelContract` runs every check over each decoder mode x
{`MTCAEModel`, `MTCAEForVideoClassification`}. Where transformers has a reference (VideoMAE's own
hidden states and attentions, its save/load and attention implementations), the check compares with it.
"""

from __future__ import annotations

import copy

import pytest
import torch
from mtcae_test_utils import tiny_config
from transformers import AutoModel, AutoModelForVideoClassification, VideoMAEModel
from transformers.modeling_outputs import BaseModelOutput

from modeling_mtcae import DECODER_MODES, MTCAEForVideoClassification, MTCAEModel

MODEL_CLASSES = (MTCAEModel, MTCAEForVideoClassification)
AUTO_CLASSES = {MTCAEModel: AutoModel, MTCAEForVideoClassification: AutoModelForVideoClassification}
PAPER_DROPOUTS = dict(projection_dropout=0.3, decoder_dropout=0.3, decoder_attention_dropout=0.3, head_dropout=0.1)


class MTCAEModelTester:
    """Tiny configs, models and inputs for one decoder mode.

    Args:
        decoder_mode: one of `DECODER_MODES`.
        batch_size: clips per batch of `prepare_inputs`.
    """

    def __init__(self, decoder_mode: str, batch_size: int = 2):
        self.decoder_mode = decoder_mode
        self.batch_size = batch_size

    def get_config(self, **overrides):
        """All dropouts off unless overridden (`PAPER_DROPOUTS`), so train mode is deterministic too."""
        return tiny_config(decoder_mode=self.decoder_mode, **overrides)

    def create_model(self, model_class, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        return model_class(self.get_config(**overrides))

    def prepare_inputs(self, model_class, config, batch_size: int | None = None, seed: int = 0) -> dict:
        """`pixel_values`, plus every target for the classifier."""
        batch = batch_size or self.batch_size
        generator = torch.Generator().manual_seed(seed)
        height, width = config.image_size
        inputs = {"pixel_values": torch.randn(batch, config.num_frames, 3, height, width, generator=generator)}
        if model_class is MTCAEForVideoClassification:
            frames = config.num_frames
            inputs["labels"] = torch.randint(0, config.num_labels, (batch,), generator=generator)
            inputs["face_boxes"] = torch.rand(batch, frames, 4, generator=generator)
            inputs["face_landmarks"] = torch.rand(batch, frames, config.num_landmarks, 2, generator=generator)
            inputs["face_mask"] = torch.rand(batch, frames, generator=generator) > 0.3
        return inputs

    @staticmethod
    def scalar_loss(output) -> torch.Tensor:
        """The classifier's loss; for `MTCAEModel`, a loss on every decoder's tokens."""
        if getattr(output, "loss", None) is not None:
            return output.loss
        states = [output.last_hidden_state, output.face_detection_hidden_state, output.face_landmark_hidden_state]
        return sum((state**2).mean() for state in states if state is not None)


def flat_tensors(value, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in an output (ModelOutput, tuple or dict, nested), keyed by its path."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    tensors = {}
    for key, item in items:
        if item is not None:
            tensors.update(flat_tensors(item, f"{prefix}.{key}" if prefix else str(key)))
    return tensors


def assert_outputs_close(first, second, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    first, second = flat_tensors(first), flat_tensors(second)
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=rtol, atol=atol, msg=lambda m, k=key: f"{k}: {m}")


def trainable_gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("decoder_mode", DECODER_MODES)
class TestMTCAEModelContract:
    @pytest.fixture
    def tester(self, decoder_mode):
        return MTCAEModelTester(decoder_mode)

    # ------------------------------------------------------------------ outputs
    def test_output_shapes_and_fields(self, tester, model_class):
        model = tester.create_model(model_class).eval()
        config = model.config
        output = model(**tester.prepare_inputs(model_class, config))
        batch, tokens, face = tester.batch_size, config.num_tokens, config.has_face_tasks
        if model_class is MTCAEModel:
            assert output.last_hidden_state.shape == (batch, tokens, config.decoder_hidden_size)
            assert output.encoder_last_hidden_state.shape == (batch, tokens, config.encoder_config.hidden_size)
            for name in ("face_detection_hidden_state", "face_landmark_hidden_state"):
                assert (getattr(output, name) is not None) == face
                if face:
                    assert getattr(output, name).shape == output.last_hidden_state.shape
        else:
            assert output.logits.shape == (batch, config.num_labels)
            assert output.loss.shape == () and torch.isfinite(output.loss)
            assert output.loss_expression is not None
            if face:
                assert output.face_boxes.shape == (batch, config.num_frames, 4)
                assert output.face_landmarks.shape == (batch, config.num_frames, config.num_landmarks, 2)
            else:
                assert output.face_boxes is None and output.loss_face_boxes is None
        for name in ("hidden_states", "attentions", "decoder_cross_attentions"):
            assert getattr(output, name) is None, name

    def test_return_dict_false_gives_the_dict_outputs_as_a_tuple(self, tester, model_class):
        model = tester.create_model(model_class, attn_implementation="eager").eval()
        inputs = tester.prepare_inputs(model_class, model.config)
        flags = dict(output_hidden_states=True, output_attentions=True)
        as_dict = model(**inputs, **flags)
        as_tuple = model(**inputs, **flags, return_dict=False)
        assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
        assert_outputs_close(as_tuple, as_dict.to_tuple(), rtol=0, atol=0)
        main = "loss" if model_class is MTCAEForVideoClassification else "last_hidden_state"
        torch.testing.assert_close(as_tuple[0], as_dict[main], rtol=0, atol=0)
        model.config.return_dict = False  # through the config too
        assert_outputs_close(model(**inputs, **flags), as_dict.to_tuple(), rtol=0, atol=0)

    def test_hidden_states_and_attentions_match_videomae_through_kwargs_and_config(self, tester, model_class):
        model = tester.create_model(model_class, attn_implementation="eager").eval()
        config = model.config
        inputs = tester.prepare_inputs(model_class, config)
        base = model if model_class is MTCAEModel else model.mtcae
        reference = VideoMAEModel(config.encoder_config).eval()
        reference.load_state_dict(base.encoder.state_dict())
        expected = reference(inputs["pixel_values"], output_hidden_states=True, output_attentions=True)

        by_kwargs = model(**inputs, output_hidden_states=True, output_attentions=True)
        config.output_hidden_states = True
        config.output_attentions = True
        by_config = model(**inputs)
        assert model(**inputs, output_hidden_states=False, output_attentions=False).hidden_states is None
        for output in (by_kwargs, by_config):
            assert len(output.hidden_states) == config.encoder_config.num_hidden_layers + 1
            assert len(output.attentions) == config.encoder_config.num_hidden_layers
            assert_outputs_close(output.hidden_states, expected.hidden_states, rtol=0, atol=0)
            assert_outputs_close(output.attentions, expected.attentions, rtol=0, atol=0)
            assert list(output.decoder_cross_attentions) == list(base.query_sources)
            for maps in output.decoder_cross_attentions.values():
                assert len(maps) == config.decoder_num_layers
                assert maps[0].shape == (tester.batch_size, config.decoder_num_heads, *(2 * [config.num_tokens]))
        assert_outputs_close(by_kwargs, by_config, rtol=0, atol=0)

    # ------------------------------------------------------------------ attention implementations
    def test_set_attn_implementation_switches_encoder_and_decoders_with_the_same_outputs(self, tester, model_class):
        model = tester.create_model(model_class).eval()
        inputs = tester.prepare_inputs(model_class, model.config)
        sdpa = model(**inputs)
        model.set_attn_implementation("eager")
        base = model if model_class is MTCAEModel else model.mtcae
        assert model.config._attn_implementation == base.encoder.config._attn_implementation == "eager"
        assert_outputs_close(model(**inputs), sdpa)
        # The maps exist only if both the encoder and the decoders now run eager attention.
        maps = model(**inputs, output_attentions=True)
        assert maps.attentions and all(maps.decoder_cross_attentions.values())
        model.set_attn_implementation("sdpa")
        assert base.encoder.config._attn_implementation == "sdpa"
        assert_outputs_close(model(**inputs), sdpa, rtol=0, atol=0)

    def test_eager_equals_sdpa_in_bfloat16_on_cpu(self, tester, model_class):
        model = tester.create_model(model_class).eval().to(torch.bfloat16)
        inputs = tester.prepare_inputs(model_class, model.config)
        inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
        sdpa = model(**inputs)
        model.set_attn_implementation("eager")
        # bf16 keeps 8 bits of mantissa: the two softmax paths round differently.
        assert_outputs_close(model(**inputs), sdpa, rtol=5e-2, atol=5e-2)

    # ------------------------------------------------------------------ batching and determinism
    def test_a_batch_of_two_equals_two_batches_of_one(self, tester, model_class):
        model = tester.create_model(model_class, **PAPER_DROPOUTS).eval()
        inputs = tester.prepare_inputs(model_class, model.config)
        pixel_values = inputs["pixel_values"]
        batched = flat_tensors(model(pixel_values))
        singles = [flat_tensors(model(pixel_values[i : i + 1])) for i in range(2)]
        for key, value in batched.items():
            torch.testing.assert_close(torch.cat([single[key] for single in singles]), value, rtol=1e-5, atol=1e-5)

    def test_eval_is_deterministic_and_train_applies_dropout(self, tester, model_class):
        model = tester.create_model(model_class, **PAPER_DROPOUTS).eval()
        inputs = tester.prepare_inputs(model_class, model.config)
        assert_outputs_close(model(**inputs), model(**inputs), rtol=0, atol=0)
        model.train()
        first, second = tester.scalar_loss(model(**inputs)), tester.scalar_loss(model(**inputs))
        assert not torch.equal(first, second)

    # ------------------------------------------------------------------ save / load
    def test_save_and_load_safetensors_round_trip(self, tester, model_class, tmp_path):
        model = tester.create_model(model_class).eval()
        inputs = tester.prepare_inputs(model_class, model.config)
        model.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / "pytorch_model.bin").exists()
        for loader in (model_class, AUTO_CLASSES[model_class]):
            reloaded = loader.from_pretrained(tmp_path).eval()
            assert type(reloaded) is model_class
            assert_outputs_close(reloaded(**inputs), model(**inputs), rtol=0, atol=0)
        flagged = model_class.from_pretrained(tmp_path, output_hidden_states=True, output_attentions=True).eval()
        output = flagged(**inputs)
        assert len(output.hidden_states) == model.config.encoder_config.num_hidden_layers + 1
        assert output.attentions and all(output.decoder_cross_attentions.values())

    def test_from_pretrained_with_other_num_labels_reinitialises_only_the_expression_head(
        self, tester, model_class, tmp_path
    ):
        model = tester.create_model(model_class)
        model.save_pretrained(tmp_path)
        saved = model.state_dict()
        if model_class is MTCAEForVideoClassification:
            with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
                model_class.from_pretrained(tmp_path, num_labels=3)
        reloaded = model_class.from_pretrained(tmp_path, num_labels=3, ignore_mismatched_sizes=True)
        assert reloaded.config.num_labels == 3
        mismatched = {"expression_head.linear.weight", "expression_head.linear.bias"}
        for name, tensor in reloaded.state_dict().items():
            if model_class is MTCAEForVideoClassification and name in mismatched:
                assert tensor.shape[0] == 3
            else:
                torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0)
        if model_class is MTCAEForVideoClassification:
            inputs = tester.prepare_inputs(model_class, reloaded.config)
            assert reloaded(**inputs).logits.shape == (tester.batch_size, 3)

    # ------------------------------------------------------------------ training
    def test_gradient_checkpointing_gives_the_same_gradients(self, tester, model_class):
        model = tester.create_model(model_class).train()
        inputs = tester.prepare_inputs(model_class, model.config)
        tester.scalar_loss(model(**inputs)).backward()
        reference = trainable_gradients(model)
        model.zero_grad()
        model.activation_checkpointing_enable()
        base = model if model_class is MTCAEModel else model.mtcae
        assert all(block.gradient_checkpointing for decoder in base.decoders.values() for block in decoder.blocks)
        tester.scalar_loss(model(**inputs)).backward()
        checkpointed = trainable_gradients(model)
        assert checkpointed.keys() == reference.keys() and reference
        for name, grad in reference.items():
            torch.testing.assert_close(
                checkpointed[name], grad, rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}"
            )

    def test_a_training_step_gives_finite_gradients_and_lowers_the_loss(self, tester, model_class):
        model = tester.create_model(model_class).train()
        inputs = tester.prepare_inputs(model_class, model.config)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        loss = tester.scalar_loss(model(**inputs))
        loss.backward()
        grads = trainable_gradients(model)
        assert grads and all(torch.isfinite(grad).all() for grad in grads.values())
        optimizer.step()
        changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
        assert changed and set(changed) <= set(grads)
        with torch.no_grad():
            assert tester.scalar_loss(model(**inputs)) < loss

    def test_meta_device_init_builds_the_same_parameters(self, tester, model_class):
        config = tester.get_config()
        shapes = {name: p.shape for name, p in model_class(config).named_parameters()}
        with torch.device("meta"):
            direct = model_class(config)
            auto = AUTO_CLASSES[model_class].from_config(copy.deepcopy(config))
        for model in (direct, auto):
            assert type(model) is model_class
            assert {name: p.shape for name, p in model.named_parameters()} == shapes
            assert all(p.device.type == "meta" for p in model.parameters())

    # ------------------------------------------------------------------ frozen-encoder feature cache (issue 10)
    def test_precomputed_encoder_tokens_give_the_full_models_loss_and_gradients(self, tester, model_class):
        model = tester.create_model(model_class, freeze_encoder=True).train()  # tester's config: dropout off
        inputs = tester.prepare_inputs(model_class, model.config)
        full_loss = tester.scalar_loss(model(**inputs))
        full_loss.backward()
        full_grads = trainable_gradients(model)
        model.zero_grad()
        with torch.no_grad():
            tokens = model.encode(inputs["pixel_values"])
        cached_inputs = {k: v for k, v in inputs.items() if k != "pixel_values"}
        cached_loss = tester.scalar_loss(model(encoder_outputs=tokens, **cached_inputs))
        cached_loss.backward()
        cached_grads = trainable_gradients(model)
        torch.testing.assert_close(cached_loss, full_loss, rtol=0, atol=0)
        assert cached_grads.keys() == full_grads.keys() and full_grads
        base = model if model_class is MTCAEModel else model.mtcae
        assert all(p.grad is None for p in base.encoder.parameters())
        for name, grad in full_grads.items():
            torch.testing.assert_close(cached_grads[name], grad, rtol=0, atol=0, msg=lambda m, n=name: f"{n}: {m}")

    def test_encoder_outputs_accept_a_model_output_a_tuple_and_bf16_tokens(self, tester, model_class):
        model = tester.create_model(model_class).eval()
        inputs = tester.prepare_inputs(model_class, model.config)
        pixel_values = inputs.pop("pixel_values")
        expected = model(pixel_values, **inputs)
        tokens = model.encode(pixel_values)
        torch.testing.assert_close(tokens, expected_tokens(model, pixel_values), rtol=0, atol=0)
        for given in (BaseModelOutput(last_hidden_state=tokens), (tokens,)):
            assert_outputs_close(model(encoder_outputs=given, **inputs), expected, rtol=0, atol=0)
        from_bf16 = model(encoder_outputs=tokens.to(torch.bfloat16), **inputs)
        main = "logits" if model_class is MTCAEForVideoClassification else "last_hidden_state"
        assert from_bf16[main].dtype == torch.float32
        torch.testing.assert_close(from_bf16[main], expected[main], rtol=0.05, atol=0.05)

    def test_exactly_one_of_pixel_values_and_encoder_outputs(self, tester, model_class):
        model = tester.create_model(model_class).eval()
        pixel_values = tester.prepare_inputs(model_class, model.config)["pixel_values"]
        tokens = model.encode(pixel_values)
        with pytest.raises(ValueError, match="exactly one of `pixel_values`.*got both"):
            model(pixel_values, encoder_outputs=tokens)
        with pytest.raises(ValueError, match="exactly one of `pixel_values`.*got neither"):
            model()
        with pytest.raises(ValueError, match=r"encoder tokens of shape \(batch, 8, 32\).*got \(2, 8, 16\)"):
            model(encoder_outputs=tokens[..., :16])


def expected_tokens(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """The encoder tokens as the full forward reports them."""
    base = model if isinstance(model, MTCAEModel) else model.mtcae
    return base(pixel_values).encoder_last_hidden_state
