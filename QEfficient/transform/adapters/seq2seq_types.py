"""The text encoder-decoder types QEFFAutoModelForSeq2SeqLM runs (transform/seq2seq.py), as data: one place for the
model class and for the causal-LM class's hint to use it."""

# model types whose step logits equal transformers' (tests/test_seq2seq.py); QEFFAutoModelForSeq2SeqLM
# refuses the others with this list
PROVEN_SEQ2SEQ_TYPES = (
    "bart", "bigbird_pegasus", "blenderbot", "blenderbot-small", "fsmt", "led", "longt5", "m2m_100", "marian", "mbart", "mt5",
    "mvp", "nllb-moe", "pegasus", "pegasus_x", "plbart", "switch_transformers", "t5", "t5gemma", "t5gemma2", "umt5",
)  # fmt: skip
