"""QEfficient's fine-tuning (``python -m QEfficient.cloud.finetune``): PyTorch and peft on the CPU (or CUDA).

Training is not ONNX Runtime's job: the model trains in transformers with a LoRA adapter from peft, and the
adapter it saves runs here as any other (``QEffAutoPeftModelForCausalLM.from_pretrained(folder)``). The
configuration classes, dataset names, command-line options and output folders are QEfficient's.
"""
