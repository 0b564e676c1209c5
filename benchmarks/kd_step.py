"""One KD training step of ordo's benchmark (benchmarks/kd_step.cpp) in Python PyTorch.

The same model (the GGUF file, dequantized to fp32 by transformers + gguf), the same shapes,
the same loss ((1 - alpha) CE + alpha T^2 KL per scored token, teacher frozen under no_grad),
global-norm clipping and AdamW; prints one JSON line with tokens/s over the timed steps.
--dtype bfloat16: fp32 master weights, forward passes and loss under torch.autocast("cpu",
bfloat16), as ordo's Context::train_dtype = bf16 does.
"""
import argparse
import copy
import json
import os
import time

import torch
import torch.nn.functional as F


def kd_loss(student_logits, teacher_logits, labels, temperature, alpha):
    scored = labels[:, 1:] != -100
    s = student_logits[:, :-1]
    t = teacher_logits[:, :-1]
    ce = F.cross_entropy(s.reshape(-1, s.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
    v = min(s.size(-1), t.size(-1))
    log_ps = torch.log_softmax(s[..., :v][scored] / temperature, -1)
    log_pt = torch.log_softmax(t[..., :v][scored] / temperature, -1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum()
    return ((1 - alpha) * ce + alpha * temperature**2 * kl) / scored.sum()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="the .gguf file")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    student = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(a.model), gguf_file=os.path.basename(a.model), dtype=torch.float32)
    load_s = time.time() - t0
    teacher = copy.deepcopy(student).eval()
    for q in teacher.parameters():
        q.requires_grad_(False)
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=2e-5, weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed)
    vocab = student.config.vocab_size
    times = []
    for step in range(a.steps + 1):  # the first step warms up and is not timed
        ids = torch.randint(0, vocab, (a.batch, a.seq), generator=g)
        mask = torch.ones_like(ids)
        labels = ids.clone()
        labels[:, 0] = -100
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.dtype == "bfloat16"):
            with torch.no_grad():
                target = teacher(input_ids=ids, attention_mask=mask).logits.float()
            logits = student(input_ids=ids, attention_mask=mask).logits.float()
            loss = kd_loss(logits, target, labels, 4.0, 0.3)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        if step > 0:
            times.append(time.perf_counter() - start)
    tokens = a.batch * a.seq * len(times)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": a.dtype,
                      "load_seconds": round(load_s, 2), "step_seconds": [round(t, 4) for t in times],
                      "tokens_per_s": tokens / sum(times), "last_loss": loss.item()}))


if __name__ == "__main__":
    main()
