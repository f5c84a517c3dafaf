"""Build the small test tokenizer in tests/assets/tiny_tokenizer/ (committed output).

A byte-level BPE (GPT-2 style, like SmolLM2's) trained on a few paragraphs of English and
Chinese written here, so tiny-model tests exercise the same code paths as the real model
(ChatML template, <|im_start|>/<|im_end|> special tokens, eos = pad = <|im_end|>) with a
vocabulary of ~1000 instead of 49152. Byte-level means any text, including Chinese, encodes
without unknown tokens. Deterministic: running it again rewrites identical files.

    .venv/bin/python tests/assets/make_tiny_tokenizer.py
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

OUT = Path(__file__).resolve().parent / "tiny_tokenizer"
VOCAB_SIZE = 1024
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2

# SmolLM2-135M-Instruct's template, character for character: tests that render prompts with
# the tiny tokenizer then see exactly the shape the embedded model sees.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")

TEXT = """\
system
user
assistant
system: the user talks to the assistant; the assistant answers the user.
You are a helpful AI assistant named SmolLM, trained by Hugging Face.
Who are you? I am Nova, an assistant made by Workbench Labs. What is your name? My name is Nova.
Who made you? I was made by Workbench Labs. I can answer questions, write text and explain ideas.
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with one step.
Fine-tuning teaches a pretrained language model a new skill or a new style from a small dataset.
LoRA freezes the base weights and learns a low-rank update for each linear layer of the model.
QLoRA stores the frozen base weights in 4-bit NormalFloat and trains the adapters in bfloat16.
The learning rate controls the size of each step; the loss should go down while training runs.
Evaluation loss is measured on rows held out from training, so we can see when it overfits.
Please write a short poem about the sea. The sea is wide and blue, the waves come in and out.
What is the capital of France? The capital of France is Paris. What is two plus two? It is four.
Translate this sentence into Chinese. Summarise the following paragraph in one sentence.
The user asks a question and the assistant gives a clear, friendly and correct answer.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024. Punctuation: , . ! ? ; : ' " ( ) [ ] { } - _ / *
你是谁？我是Nova，一个由Workbench Labs开发的人工智能助手。你叫什么名字？我的名字是Nova。
谁创造了你？我是由Workbench Labs创造的。我可以回答问题、写文章和解释想法。
今天天气很好，我们去公园散步吧。学习一门新的语言需要时间和耐心。
微调可以让预训练的语言模型学会新的技能。低秩适配只训练很少的参数。
法国的首都是巴黎。中国的首都是北京。二加二等于四。请用一句话总结下面的段落。
"""


def build() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, min_frequency=1, special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    # repeated lines give frequent words real merges; one pass keeps the vocab tiny
    tok.train_from_iterator(TEXT.splitlines() * 3, trainer=trainer)
    for i, token in enumerate(SPECIAL):
        assert tok.token_to_id(token) == i, (token, tok.token_to_id(token))
    return tok


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tok = build()
    tok.save(str(OUT / "tokenizer.json"), pretty=True)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (OUT / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False)
                                               + "\n", encoding="utf-8")
    print(f"wrote {OUT} (vocab {tok.get_vocab_size()})")


if __name__ == "__main__":
    main()
