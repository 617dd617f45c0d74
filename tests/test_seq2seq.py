"""QEFFAutoModelForSeq2SeqLM: text encoder-decoders (T5, BART, Marian, mBART, Pegasus, M2M100, ...) on ONNX Runtime.
Per supported type, a tiny random model: the greedy tokens of a batch of two inputs of different lengths equal
transformers' ``generate`` (with the checkpoint's own generation rules), and each decoder step's logits equal
transformers' forward over the same tokens to 1e-4; then the generation rules, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

from QEfficient import QEFFAutoModelForSeq2SeqLM, QEFFCommonLoader, QEFFT5Gemma2ForConditionalGeneration
from QEfficient.export.graph_names import ATTENTION_MASK, ENCODER_ATTENTION_MASK, INPUT_IDS
from QEfficient.export.seq2seq_graph_specs import Seq2SeqEncoderGraphSpec
from QEfficient.models.seq2seq_lm import SUPPORTED_TYPES
from QEfficient.runtime.ort_session import open_artifact_session, open_kv_session

PROMPTS = ["hello world the cat", "a b c d e f g h i j k l"]
GEN = 10
T5_TYPES = ("t5", "mt5", "umt5", "longt5", "switch_transformers")


def encoder_decoder_config(kind: str, tok):
    """transformers' EncoderDecoderModel: BERT2BERT, or a RoBERTa encoder wider than its GPT-2 decoder (the model's
    projection between them)."""
    from transformers import BertConfig, EncoderDecoderConfig, GPT2Config, RobertaConfig

    shape = dict(vocab_size=320, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
    if kind == "bert2bert":
        pair = BertConfig(hidden_size=32, **shape), BertConfig(hidden_size=32, is_decoder=True, add_cross_attention=True, **shape)
    else:
        gpt2 = GPT2Config(vocab_size=320, n_embd=24, n_layer=2, n_head=4, n_positions=64, is_decoder=True, add_cross_attention=True)
        pair = RobertaConfig(hidden_size=48, pad_token_id=tok.pad_token_id, **shape), gpt2
    config = EncoderDecoderConfig.from_encoder_decoder_configs(*pair)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = tok.bos_token_id, tok.pad_token_id, tok.eos_token_id
    return config


ENCODER_DECODER_PAIRS = ("bert2bert", "roberta2gpt2")


def tiny_config(kind: str, tok):
    if kind in ENCODER_DECODER_PAIRS:
        return encoder_decoder_config(kind, tok)
    if kind in ("t5gemma", "t5gemma2"):  # grouped KV heads; a sliding window of 4 in the first layer of each half
        half = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
        half |= dict(vocab_size=320, layer_types=["sliding_attention", "full_attention"], sliding_window=4)
        tokens = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
        tokens |= dict(vocab_size=320, decoder_start_token_id=tok.eos_token_id)
        if kind == "t5gemma":
            return AutoConfig.for_model(kind, encoder=half, decoder=dict(half), **tokens)
        # T5Gemma 2: its encoder has an image tower (text prompts leave it unused: a tiny one) and its decoder one
        # merged attention over its own keys and the encoder's
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=7)
        encoder = dict(text_config=half, vision_config=vision | dict(vision_use_head=False), mm_tokens_per_image=4)
        return AutoConfig.for_model(kind, encoder=encoder, decoder=dict(half), **tokens)
    if kind in T5_TYPES:
        options = dict(
            d_model=64, d_kv=16, d_ff=96, num_layers=2, num_decoder_layers=2, num_heads=4, decoder_start_token_id=tok.pad_token_id
        )
    else:
        options = dict(
            d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
            decoder_ffn_dim=96, max_position_embeddings=130, bos_token_id=tok.bos_token_id, decoder_start_token_id=tok.eos_token_id,
        )  # fmt: skip
        if kind == "bigbird_pegasus":
            options["attention_type"] = "original_full"  # block-sparse attention needs inputs of many blocks
        if kind == "led":  # windows of 4 and 8 tokens (2 and 4 either side): the inputs span several; a table per half
            options |= dict(attention_window=[4, 8], max_encoder_position_embeddings=130, max_decoder_position_embeddings=130)
        if kind == "fsmt":  # a vocabulary per language
            options |= dict(langs=["en", "de"], src_vocab_size=320, tgt_vocab_size=320)
    return AutoConfig.for_model(kind, vocab_size=320, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **options)


@pytest.fixture(scope="module")
def seq2seq_dir(tmp_path_factory, tokenizer_dir):
    """Factory: model type -> a folder with a tiny random encoder-decoder (weights widened so that greedy tokens vary)
    and the local tokenizer."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)

    def make(kind: str, config: dict | None = None, **generation) -> tuple:
        """``config``: fields that replace the tiny config's; ``generation``: the generation config's."""
        folder = tmp_path_factory.mktemp(kind)
        torch.manual_seed(0)
        options = tiny_config(kind, tok)
        for key, value in (config or {}).items():
            setattr(options, key, value)
        model = AutoModelForSeq2SeqLM.from_config(options)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.3)
        for key, value in generation.items():
            setattr(model.generation_config, key, value)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        return folder, tok

    return make


def step_logits(model, qpc_paths: dict, ids: np.ndarray, mask: np.ndarray, decoder_ids: np.ndarray, **extra) -> np.ndarray:
    """The decoder graph's logits [rows, steps, vocab] after each of ``decoder_ids``' tokens, fed one at a time; the
    encoder's inputs as ``model``'s generate() makes them (LED's padded, with its global attention mask: ``extra``)."""
    encoder = open_artifact_session(qpc_paths["encoder_qpc_path"], 1)
    decoder = open_kv_session(qpc_paths["decoder_qpc_path"], 1)
    inputs = model._encoder_inputs(None, None, {INPUT_IDS: np.asarray(ids), ATTENTION_MASK: np.asarray(mask)}, **extra)
    cross = encoder.run(None, inputs)
    decoder.reset()
    decoder.bind_inputs(
        **{ENCODER_ATTENTION_MASK: inputs[ATTENTION_MASK], **dict(zip(Seq2SeqEncoderGraphSpec(len(cross) // 2).output_names, cross))}
    )
    rows = len(ids)
    return np.stack([decoder.run(decoder_ids[:, i : i + 1], np.full((rows, 1), i)).copy() for i in range(decoder_ids.shape[1])], 1)


@pytest.mark.parametrize("kind", [*SUPPORTED_TYPES, *ENCODER_DECODER_PAIRS])
def test_greedy_tokens_and_step_logits_equal_transformers(kind, seq2seq_dir):
    folder, tok = seq2seq_dir(kind)
    # T5Gemma 2 reads images too: the loader gives its image class, this one runs its text alone
    routed = QEFFCommonLoader.model_class(str(folder))
    assert routed is (QEFFT5Gemma2ForConditionalGeneration if kind == "t5gemma2" else QEFFAutoModelForSeq2SeqLM)
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    paths = model.compile(ctx_len=32, batch_size=2, num_cores=1)
    info = model.generate(tok, PROMPTS, generation_len=GEN)
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = hf.generate(**enc, max_new_tokens=GEN, do_sample=False, num_beams=1)
    ours = info.generated_ids[0]
    assert ours.tolist() == reference[:, : ours.shape[1]].tolist() and (reference[:, ours.shape[1] :] == tok.pad_token_id).all()
    assert info.generated_texts[0] == tok.batch_decode(reference, skip_special_tokens=True)
    with torch.no_grad():
        expected = hf(**enc, decoder_input_ids=reference, use_cache=False).logits.numpy()  # FSMT masks nothing with a cache
    got = step_logits(model, paths, enc["input_ids"].numpy(), enc["attention_mask"].numpy(), reference.numpy())
    for row in range(2):  # up to each row's end: after it HF feeds padding
        n = int((reference[row] != tok.pad_token_id).sum()) if kind not in T5_TYPES else reference.shape[1]
        np.testing.assert_allclose(got[row, :n], expected[row, :n], atol=1e-4, rtol=0)
    # 12 decoder tokens whatever the model writes (past a sliding window of 4, where a model has one)
    forced = torch.cat([reference[:, :1], torch.randint(3, 300, (2, 11), generator=torch.Generator().manual_seed(1))], 1)
    with torch.no_grad():
        expected = hf(**enc, decoder_input_ids=forced, use_cache=False).logits.numpy()
    got = step_logits(model, paths, enc["input_ids"].numpy(), enc["attention_mask"].numpy(), forced.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    # beam search: two inputs of two beams each (where the family's graph reads one row of cross keys/values per
    # input, the beams of each input share it)
    with torch.no_grad():
        reference = hf.generate(**enc, max_new_tokens=GEN, do_sample=False, num_beams=2, repetition_penalty=1.3)
    model.hf.generation_config.repetition_penalty = 1.3  # beams that differ
    assert model.generate(tok, PROMPTS, generation_len=GEN, num_beams=2).generated_ids[0].tolist() == reference.tolist()


def test_the_checkpoint_s_generation_rules(seq2seq_dir):
    """forced_bos_token_id (mBART's target language), min_new_tokens, no_repeat_ngram_size and bad_words_ids change
    greedy tokens as in transformers."""
    rules = dict(forced_bos_token_id=77, no_repeat_ngram_size=2, bad_words_ids=[[125], [5, 6]], repetition_penalty=1.3)
    rules |= dict(encoder_no_repeat_ngram_size=2, begin_suppress_tokens=[78], max_length=9)
    folder, tok = seq2seq_dir("mbart", **rules)
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():  # the token transformers writes after the forced one, suppressed there from now on
        first = int(hf.generate(**enc, max_new_tokens=3, do_sample=False, num_beams=1)[0, 2])
    for generation_config in (hf.generation_config, model.hf.generation_config):
        generation_config.begin_suppress_tokens = [first]
    for min_new, bos, length in ((None, None, GEN), (8, 90, GEN), (None, None, None)):
        with torch.no_grad():  # length None: the checkpoint's max_length, its end token forced there
            given = {k: v for k, v in dict(max_new_tokens=length, min_new_tokens=min_new, forced_bos_token_id=bos).items() if v is not None}
            reference = hf.generate(**enc, do_sample=False, num_beams=1, **given)
        ours = model.generate(inputs=dict(enc), generation_len=length, min_new_tokens=min_new, forced_bos_token_id=bos).generated_ids[0]
        assert ours.tolist() == reference[:, : ours.shape[1]].tolist()
        assert (ours[:, 1] == (bos or 77)).all() and 125 not in ours


def test_a_checkpoint_without_a_length_gets_transformers_default(seq2seq_dir):
    """Neither max_length nor max_new_tokens in the checkpoint: 20 new tokens after the start token, as transformers
    generates (BART forces its end token at the last of them)."""
    folder, tok = seq2seq_dir("bart")
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    assert model.hf.generation_config.max_length is None and model.hf.generation_config.max_new_tokens is None
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad(), pytest.warns(UserWarning, match="max_length"):
        reference = hf.generate(**enc, do_sample=False, num_beams=1)
    assert reference.shape[1] == 21
    assert model.generate(inputs=dict(enc)).generated_ids[0].tolist() == reference.tolist()
    # ... up to the decoder's max_position_embeddings (12 here: 11 new tokens, the end token forced at the last)
    folder, tok = seq2seq_dir("bart", config={"max_position_embeddings": 12})
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=12, batch_size=2, num_cores=1)
    enc = tok(["hello world", "the cat"], padding=True, return_tensors="pt")
    with torch.no_grad(), pytest.warns(UserWarning, match="max_length"):
        reference = AutoModelForSeq2SeqLM.from_pretrained(folder).eval().generate(**enc, do_sample=False, num_beams=1)
    assert reference.shape[1] == 12
    assert model.generate(inputs=dict(enc)).generated_ids[0].tolist() == reference.tolist()


def test_token_logprobs_are_transformers_logits_log_softmaxed(seq2seq_dir):
    """top_logprobs: each new token's log-probability and the likeliest alternatives, from the logits transformers'
    output_logits returns (before the rules), up to and with each row's end; refused with beams."""
    folder, tok = seq2seq_dir("t5")
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**enc, max_new_tokens=GEN, do_sample=False, num_beams=1, output_logits=True, return_dict_in_generate=True)
    expected = torch.log_softmax(torch.stack(out.logits, 1).double(), -1).numpy()  # [rows, steps, vocab]
    info = model.generate(tok, PROMPTS, generation_len=GEN, top_logprobs=3)
    for row, (sequence, entries) in enumerate(zip(info.generated_ids[0], info.logprobs)):
        new = sequence[1:]
        ends = np.flatnonzero(new == tok.eos_token_id)
        assert len(entries) == (ends[0] + 1 if len(ends) else GEN)
        for step, (logprob, top_ids, top_logprobs) in enumerate(entries):
            assert logprob == pytest.approx(expected[row, step, new[step]], abs=1e-4)
            assert top_ids == np.argsort(-expected[row, step], kind="stable")[:3].tolist()
            np.testing.assert_allclose(top_logprobs, expected[row, step, top_ids], atol=1e-4)
    sampled = model.generate(tok, PROMPTS, generation_len=GEN, top_logprobs=0, do_sample=True, seed=3)
    assert [len(e) for e in sampled.logprobs] == [int((row[1:] != tok.pad_token_id).sum()) for row in sampled.generated_ids[0]]
    assert all(ids == [] for entries in sampled.logprobs for _, ids, _ in entries)
    with pytest.raises(NotImplementedError, match="beam"):
        model.generate(tok, PROMPTS, generation_len=GEN, top_logprobs=1, num_beams=2)
    with pytest.raises(ValueError, match="top_logprobs"):
        model.generate(tok, PROMPTS, generation_len=GEN, top_logprobs=-1)


def test_8_bit_decoder_weights_stay_close(seq2seq_dir):
    """``mxfp6_matmul=True``: the decoder's MatMul weights in 8-bit blocks; its step logits stay within 3 % of the
    largest of float32's."""
    folder, tok = seq2seq_dir("t5")
    enc = tok(PROMPTS, padding=True, return_tensors="np")
    steps = np.array([[0, 5, 9, 12]] * 2)
    logits = []
    for mxfp6 in (False, True):
        model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
        paths = model.compile(ctx_len=16, batch_size=2, num_cores=1, mxfp6_matmul=mxfp6)
        logits.append(step_logits(model, paths, enc["input_ids"], enc["attention_mask"], steps))
        assert model.generate(tok, PROMPTS, generation_len=4).generated_ids[0].shape[0] == 2
    assert np.abs(logits[1] - logits[0]).max() < 0.03 * np.abs(logits[0]).max()


def test_the_common_loader_routes_encoder_decoders_here(seq2seq_dir):
    from QEfficient import QEFFCommonLoader

    folder, _ = seq2seq_dir("bart")  # BART also has a causal-LM class (its decoder alone): the whole model comes here
    assert type(QEFFCommonLoader.from_pretrained(folder)) is QEFFAutoModelForSeq2SeqLM
    from transformers import BartForCausalLM

    decoder_only = folder.parent / "bart-decoder"
    BartForCausalLM.from_pretrained(folder).save_pretrained(decoder_only)  # its decoder alone stays a causal LM
    assert QEFFCommonLoader.model_class(decoder_only) is not QEFFAutoModelForSeq2SeqLM


def test_generation_past_the_first_cache_window(seq2seq_dir):
    """The runtime binds the cache in windows of 128 slots and moves it to a larger one as the decoder goes on."""
    folder, tok = seq2seq_dir("t5")
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=160, batch_size=2, num_cores=1)
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = hf.generate(**enc, max_new_tokens=140, min_new_tokens=140, do_sample=False, num_beams=1)
    ours = model.generate(tok, PROMPTS, generation_len=140, min_new_tokens=140).generated_ids[0]
    assert ours.shape[1] == 141 and ours.tolist() == reference.tolist()


def test_the_infer_command_runs_an_encoder_decoder(seq2seq_dir, capsys):
    from QEfficient.cloud import infer

    folder, tok = seq2seq_dir("t5")
    info = infer.main(
        model_name=str(folder), prompt=["hello world the cat", "a b c"], ctx_len=16, batch_size=2, num_cores=1, generation_len=5
    )
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    enc = tok(["hello world the cat", "a b c"], padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = hf.generate(**enc, max_new_tokens=5, do_sample=False, num_beams=1)
    assert info.generated_texts[0] == tok.batch_decode(reference, skip_special_tokens=True)
    out = capsys.readouterr().out
    assert f"Prompt : a b c\nOutput : {info.generated_texts[0][1]}" in out
    # a checkpoint asking for two sequences: each prompt with its own two (the second prompt was shown the first's)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    model.generation_config.num_beams, model.generation_config.num_return_sequences = 4, 2
    model.save_pretrained(folder.parent / "two")
    tok.save_pretrained(folder.parent / "two")
    info = infer.main(
        model_name=str(folder.parent / "two"), prompt=["hello world the cat", "a b c"], ctx_len=16, num_cores=1, generation_len=5
    )
    texts = [t for batch in info.generated_texts for t in batch]
    assert len(texts) == 4 and f"Prompt : a b c\nOutput 1 : {texts[2]}\nOutput 2 : {texts[3]}" in capsys.readouterr().out


def test_the_causal_lm_class_points_here(seq2seq_dir):
    from QEfficient import QEFFAutoModelForCausalLM

    folder, _ = seq2seq_dir("marian")
    with pytest.raises(Exception, match="QEFFAutoModelForSeq2SeqLM"):
        QEFFAutoModelForCausalLM.from_pretrained(folder)


def test_bad_input_is_a_clear_error(seq2seq_dir, tiny_model_dir):
    folder, tok = seq2seq_dir("t5")
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    with pytest.raises(TypeError, match="compile"):
        model.generate(tok, PROMPTS)
    model.compile(ctx_len=8, batch_size=1, num_cores=1)
    with pytest.raises(ValueError, match="ctx_len"):
        model.generate(tok, PROMPTS, generation_len=20)
    with pytest.raises(ValueError, match="tokenizer and prompts"):
        model.generate(tok)
    with pytest.raises(ValueError, match="non-empty list"):
        model.generate(tok, [])
    enc = tok(PROMPTS[:1], return_tensors="pt")  # transformers' spelling: the tokenizer's output, max_new_tokens
    assert (
        model.generate(**enc, max_new_tokens=4).generated_ids[0].tolist()
        == model.generate(inputs=dict(enc), generation_len=4).generated_ids[0].tolist()
    )
    with pytest.raises(ValueError, match="disagree"):
        model.generate(**enc, max_new_tokens=4, generation_len=5)
    padded = tok(PROMPTS, return_tensors="pt", padding=True, return_token_type_ids=True)
    expected = model.generate(inputs=dict(padded), generation_len=4).generated_ids
    # input_ids positional, no mask (built from the pad token, as transformers does), token_type_ids not read
    assert [b.tolist() for b in model.generate(padded["input_ids"], max_new_tokens=4).generated_ids] == [b.tolist() for b in expected]
    assert [b.tolist() for b in model.generate(**padded, max_new_tokens=4).generated_ids] == [b.tolist() for b in expected]
    with pytest.raises(ValueError, match="without input_ids"):
        model.generate(attention_mask=padded["attention_mask"], max_new_tokens=4)
    with pytest.raises(ValueError, match="one way"):
        model.generate(tok, PROMPTS, input_ids=padded["input_ids"], max_new_tokens=4)
    with pytest.raises(ValueError, match="one way"):  # (the prompts were left unread)
        model.generate(tok, PROMPTS, inputs=dict(padded), max_new_tokens=4)
    for bad in (10**6, -5):  # (an IndexError in the rules; a negative id forced a token counted from the end)
        with pytest.raises(ValueError, match=f"forced_bos_token_id holds the id {bad}, outside this model's vocabulary"):
            model.generate(tok, PROMPTS[:1], generation_len=2, forced_bos_token_id=bad)
    rows = model.hf.get_input_embeddings().num_embeddings  # another model's ids: said before the embedding lookup
    with pytest.raises(ValueError, match=rf"input_ids holds the id {rows}, outside this model's vocabulary \[0, {rows}\)"):
        model.generate(input_ids=[[5, 6, rows]], max_new_tokens=4)
    with pytest.raises(ValueError, match="decoder_input_ids holds the id -1"):
        model.generate(input_ids=[[5, 6, 7]], decoder_input_ids=[[-1]], max_new_tokens=4)
    from transformers import AutoModelForCausalLM

    with pytest.raises(TypeError, match="QEFFAutoModelForCausalLM"):
        QEFFAutoModelForSeq2SeqLM(AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama")))
    shape = dict(vocab_size=320, hidden_size=32, num_encoder_layers=1, num_decoder_layers=1, encoder_ffn_dim=37, decoder_ffn_dim=37)
    prophetnet = AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model("prophetnet", **shape))
    with pytest.raises(NotImplementedError, match="QEFF_ALLOW_ANY_ARCHITECTURE"):
        QEFFAutoModelForSeq2SeqLM(prophetnet)
    sparse = AutoConfig.for_model("bigbird_pegasus", vocab_size=320, d_model=32, encoder_layers=1, decoder_layers=1)
    with pytest.raises(NotImplementedError, match="original_full"):  # block-sparse attention: not exported
        QEFFAutoModelForSeq2SeqLM(AutoModelForSeq2SeqLM.from_config(sparse))


def test_an_encoder_decoder_model_with_an_unproven_decoder_is_refused(tokenizer_dir):
    """transformers' EncoderDecoderModel runs with the decoders proven for it; another is refused with the switch."""
    from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel, XLMRobertaConfig

    shape = dict(vocab_size=320, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37)
    decoder = XLMRobertaConfig(is_decoder=True, add_cross_attention=True, **shape)
    model = EncoderDecoderModel(EncoderDecoderConfig.from_encoder_decoder_configs(BertConfig(**shape), decoder))
    with pytest.raises(NotImplementedError, match=r"'xlm-roberta' decoder \(proven: bert, gpt2\) is not proven here; QEFF_ALLOW"):
        QEFFAutoModelForSeq2SeqLM(model)
    model = EncoderDecoderModel(EncoderDecoderConfig.from_encoder_decoder_configs(XLMRobertaConfig(**shape), decoder))
    with pytest.raises(NotImplementedError, match=r"'xlm-roberta' encoder \(proven: bert, roberta\)"):
        QEFFAutoModelForSeq2SeqLM(model)


def test_two_vocabularies_leave_the_texts_to_the_caller(seq2seq_dir):
    """An EncoderDecoderModel whose decoder reads another vocabulary (BERT2GPT-2): generate() writes the ids and no
    texts, with a warning that says how to read them; the server refuses it. A RoBERTa position table serves its
    max_position_embeddings less the rows up to its padding index."""
    from transformers import RobertaConfig

    from QEfficient.models.base import usable_positions
    from QEfficient.serving.seq2seq_app import create_seq2seq_app

    folder, tok = seq2seq_dir("roberta2gpt2", config={"decoder": _wider_vocabulary()})
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=16, batch_size=2, num_cores=1)
    with pytest.warns(UserWarning, match="decoder reads another vocabulary .* decode generated_ids with the decoder's tokenizer"):
        info = model.generate(tok, PROMPTS, generation_len=4)
    assert info.generated_texts == [] and info.generated_ids[0].shape[0] == 2
    with pytest.raises(ValueError, match="two vocabularies"):
        create_seq2seq_app(model, tok, "m", 16)
    assert usable_positions(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512


def _wider_vocabulary():
    from transformers import GPT2Config

    return GPT2Config(vocab_size=400, n_embd=24, n_layer=2, n_head=4, n_positions=64, is_decoder=True, add_cross_attention=True)


def test_nested_halves_bound_the_lengths(seq2seq_dir):
    """T5Gemma keeps its halves' configs: ctx_len is bounded by the decoder's position table, inputs by the encoder's."""
    folder, _ = seq2seq_dir("t5gemma")
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    limit = model.config.decoder.max_position_embeddings
    with pytest.raises(ValueError, match=rf"ctx_len \({limit + 1}\) exceeds the model's max_position_embeddings \({limit}\)"):
        model.compile(ctx_len=limit + 1)
    assert model.max_input_positions() == model.config.encoder.max_position_embeddings


def test_led_global_attention_equals_transformers(seq2seq_dir):
    """LED with tokens marked for global attention (its model cards mark the first): a different number per row (up
    to three, where the export's example had two), inputs of several windows, one padded: tokens, beams and each
    step's logits equal transformers'; the mask goes in as generate()'s argument or in the inputs."""
    folder, tok = seq2seq_dir("led")
    prompts = [PROMPTS[1] + " m n o p q r s t", PROMPTS[0]]
    enc = tok(prompts, padding=True, return_tensors="pt")
    global_mask = torch.zeros_like(enc["input_ids"])
    global_mask[:, 0] = 1
    global_mask[0, [3, 11]] = 1
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    paths = model.compile(ctx_len=32, batch_size=2, num_cores=1)
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    with torch.no_grad():
        reference = hf.generate(**enc, global_attention_mask=global_mask, max_new_tokens=GEN, do_sample=False, num_beams=1)
        plain = hf.generate(**enc, max_new_tokens=GEN, do_sample=False, num_beams=1)
    assert reference.tolist() != plain.tolist()  # the global tokens change the answer
    ours = model.generate(tok, prompts, generation_len=GEN, global_attention_mask=global_mask).generated_ids[0]
    assert ours.tolist() == reference[:, : ours.shape[1]].tolist() and (reference[:, ours.shape[1] :] == tok.pad_token_id).all()
    in_inputs = model.generate(inputs={**enc, "global_attention_mask": global_mask}, max_new_tokens=GEN).generated_ids[0]
    assert in_inputs.tolist() == ours.tolist()
    with torch.no_grad():
        expected = hf(**enc, global_attention_mask=global_mask, decoder_input_ids=reference, use_cache=False).logits.numpy()
    got = step_logits(model, paths, enc["input_ids"], enc["attention_mask"], reference.numpy(), global_attention_mask=global_mask)
    for row in range(2):
        n = int((reference[row] != tok.pad_token_id).sum())
        np.testing.assert_allclose(got[row, :n], expected[row, :n], atol=1e-4, rtol=0)
    with torch.no_grad():
        beams = hf.generate(**enc, global_attention_mask=global_mask, max_new_tokens=GEN, num_beams=2, do_sample=False)
    got_beams = model.generate(tok, prompts, generation_len=GEN, num_beams=2, global_attention_mask=global_mask).generated_ids[0]
    assert got_beams.tolist() == beams.tolist()

    assert model.max_input_positions() == 128  # its 130-row table, less what padding to the window (8) would pass
    with pytest.raises(ValueError, match="shaped as input_ids"):
        model.generate(tok, prompts, generation_len=2, global_attention_mask=global_mask[:, :3])
    bart, _ = seq2seq_dir("bart")
    other = QEFFAutoModelForSeq2SeqLM.from_pretrained(bart)
    other.compile(ctx_len=16, batch_size=2, num_cores=1)
    with pytest.raises(ValueError, match="LED's"):
        other.generate(tok, prompts, generation_len=2, global_attention_mask=global_mask)
