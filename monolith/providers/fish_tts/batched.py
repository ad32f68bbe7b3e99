"""Continuous batching for Fish Speech's DualAR text-to-semantic model: many chunks, one decode.

Fish Speech 0.1.0 (like its own server) decodes one sequence at a time, so one TTS device keeps
up with few talking sessions. Here one `step()` advances every active chunk by one semantic
token: the slow transformer runs once over all active rows (one query row per chunk, each at its
own position), then the fast transformer once per codebook over all rows. Chunks join between
steps (prefilled one by one, then decoded with the rest) and leave when they end (im_end or
max_new_tokens) or are cancelled (their row is freed at the next step). Admission keeps
first-chunk-first, then arrival order.

Built on Fish's own model (its modules and weights are called, not copied):
- every layer's wqkv / q_norm / k_norm / wo / feed_forward / norms, the embeddings, output and
  fast heads, freqs_cis and the causal mask; `apply_rotary_emb`;
- `ContentSequence.encode_for_inference`: the prompt exactly as `generate_long` builds it;
- the prefill is Fish's own `decode_one_token_ar` on the model's batch-1 caches, with the chunk's
  random stream standing in for the global one; its K/V rows are then copied into the chunk's
  row. The first token and cache are therefore Fish's, bit for bit.
Re-implemented, since Fish's versions assume one position for the whole batch:
- the slow attention's cache write and mask with a position per row (RoPE per row, a causal
  mask per row), reading the cache only up to the longest active row (rounded up);
- `logits_to_probs` / sampling per row, each row drawing from its chunk's own generator, so a
  seeded chunk sees the random stream Fish's path would after `set_seed(seed)`, whatever else
  is in the batch;
- `decode_n_tokens`' bookkeeping: the repetition-penalty window (Fish's quirk included: the
  semantic token's penalty reads window[:, 0], one time step across the codebook rows), the
  im_end stop rule, the max_new_tokens clamp, and the returned codes `y[1:, T:-1]`.

Measured on the tiny checkpoint and on random S1-mini layer sizes, greedy and seeded sampling,
float32: every chunk decoded in a batch of 8 gives exactly the tokens it gives alone and that
Fish's own `generate_long` gives (tests/providers/test_fish_batched.py checks it on every run).

Active chunks always occupy rows 0..n-1 of the caches (`cache[:n]` is a view); when a chunk
leaves, the last active row moves into its place. Everything here runs on the decode thread,
except `submit`, `cancel` and `pending`, which are thread safe.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

WINDOW = 16  # decode_n_tokens' repetition-penalty window
ATTN_MULTIPLE = 64  # the attended cache length is rounded up to this (fewer distinct shapes)

ChunkState = Literal["waiting", "running", "done", "cancelled", "failed"]


def fish_seed(seed: int) -> int:
    """fish_speech.utils.set_seed's normalisation."""
    return min(abs(seed), 1 << 31)


@dataclass(eq=False)
class ChunkHandle:
    """One text chunk's request and, once done, its codes ([num_codebooks, n] int32, what
    generate_long yields as GenerateResponse.codes)."""

    id: int
    text: str
    priority: int  # 0: the first chunk of a response, 1: a later one
    seq: int
    temperature: float
    top_p: float
    repetition_penalty: float
    max_new_tokens: int
    seed: int | None
    encoded: Any = field(repr=False, default=None)
    audio_masks: Any = field(repr=False, default=None)
    audio_parts: Any = field(repr=False, default=None)
    state: ChunkState = "waiting"
    codes: Any = field(repr=False, default=None)
    generated: int = 0  # semantic tokens so far (the prefill's included)
    error: BaseException | None = None
    cancel_requested: bool = False
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    generator: Any = field(default=None, repr=False)
    first_token: Any = field(default=None, repr=False)
    num_decode: int = 0
    _callbacks: list[Callable[[ChunkHandle], None]] = field(default_factory=list, repr=False)
    _callback_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_done_callback(self, fn: Callable[[ChunkHandle], None]) -> None:
        """`fn(handle)` once the chunk is done, cancelled or failed (on the decode thread, or at
        once if it already is)."""
        with self._callback_lock:
            if not self.done.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def finish(self, state: ChunkState) -> None:
        self.state = state
        self.generator = None
        with self._callback_lock:
            self.done.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:  # a consumer's callback must not stop the decode loop
                log.exception("a TTS chunk's done callback failed")


def _sampling_param(value: float) -> Any:
    import torch

    # generate_long makes a float32 tensor, generate() turns it into bfloat16: the same rounding
    return torch.tensor(value, dtype=torch.float).to(torch.bfloat16)


class BatchedSemanticDecoder:
    def __init__(self, model: Any, max_batch: int, *, cache_len: int | None = None) -> None:
        import torch
        from fish_speech.tokenizer import IM_END_TOKEN

        if getattr(model.config, "is_reward_model", False):
            raise ValueError("a reward model cannot be decoded")
        self.model = model
        self.cfg = model.config
        self.max_batch = max_batch
        self.cache_len = min(cache_len or self.cfg.max_seq_len, self.cfg.max_seq_len)
        self.device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        tokenizer = model.tokenizer
        self.im_end = tokenizer.get_token_id(IM_END_TOKEN)
        self.sem_begin, self.sem_end = tokenizer.semantic_begin_id, tokenizer.semantic_end_id
        self.codebooks = self.cfg.num_codebooks
        rows = self.codebooks + 1
        dev, b, length = self.device, max_batch, self.cache_len
        self.k = [torch.zeros(b, self.cfg.n_local_heads, length, self.cfg.head_dim, device=dev, dtype=dtype)
                  for _ in model.layers]
        self.v = [torch.zeros_like(t) for t in self.k]
        self.fast_k = [torch.zeros(b, self.cfg.fast_n_local_heads, self.codebooks, self.cfg.fast_head_dim, device=dev,
                                   dtype=dtype) for _ in model.fast_layers]
        self.fast_v = [torch.zeros_like(t) for t in self.fast_k]
        self.pos = torch.zeros(b, dtype=torch.long, device=dev)  # each row's next write position
        self.step_idx = torch.zeros(b, dtype=torch.long, device=dev)  # decode_n_tokens' i
        self.cur = torch.zeros(b, rows, dtype=torch.int, device=dev)
        self.hist = torch.zeros(b, rows, length, dtype=torch.int, device=dev)  # its previous_tokens
        self.temp = torch.zeros(b, 1, dtype=torch.bfloat16, device=dev)
        self.top_p = torch.zeros(b, 1, dtype=torch.bfloat16, device=dev)
        self.rep = torch.zeros(b, 1, dtype=torch.bfloat16, device=dev)
        self.slots: list[ChunkHandle] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiting: list[tuple[int, int, ChunkHandle]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self.steps = 0
        self.tokens = 0
        self.admitted: deque[int] = deque(maxlen=256)  # chunk ids in the order they got a row
        self.widest = 0  # the most rows one step has decoded
        self.on_step: Callable[[int], None] | None = None  # metrics: rows decoded per step

    # --- requests (any thread) ---------------------------------------------------------------

    def encode(self, text: str, prompt_text: list[str] | None = None, prompt_tokens: list[Any] | None = None,
               ) -> tuple[Any, Any, Any]:
        """generate_long's prompt, built the same way."""
        from fish_speech.content_sequence import ContentSequence, TextPart, VQPart

        seq = ContentSequence(modality="interleave")
        if prompt_text and prompt_tokens:
            for t, codes in zip(prompt_text, [c.cpu() for c in prompt_tokens], strict=True):
                seq.append([TextPart(text=t), VQPart(codes=codes)], add_end=True, speaker=0)
        seq.append([TextPart(text=text)], add_end=False, speaker=0)
        encoded, audio_masks, audio_parts = seq.encode_for_inference(self.model.tokenizer, num_codebooks=self.codebooks)
        if encoded.size(1) > self.cfg.max_seq_len - 2048:
            raise ValueError(f"the prompt is too long: {encoded.size(1)} > {self.cfg.max_seq_len - 2048} tokens")
        return encoded.to(self.device), audio_masks, audio_parts

    def submit(self, text: str, *, prompt_text: list[str] | None = None, prompt_tokens: list[Any] | None = None,
               temperature: float, top_p: float, repetition_penalty: float, max_new_tokens: int,
               seed: int | None = None, first_in_response: bool = True) -> ChunkHandle:
        encoded, audio_masks, audio_parts = self.encode(text, prompt_text, prompt_tokens)
        length = int(encoded.size(1))
        room = self.cfg.max_seq_len - length
        max_new = min(max_new_tokens, room) if max_new_tokens else room  # generate()'s clamp
        if max_new < 2:
            raise ValueError("max_new_tokens must be at least 2 (Fish's decode loop needs one step)")
        max_new = min(max_new, self.cache_len - length)
        if max_new < 2:
            raise ValueError(f"the prompt ({length} tokens) fills the decode cache ({self.cache_len})")
        handle = ChunkHandle(
            id=next(self._ids), text=text, priority=0 if first_in_response else 1, seq=next(self._seq),
            temperature=temperature, top_p=top_p, repetition_penalty=repetition_penalty, max_new_tokens=max_new,
            seed=seed, encoded=encoded, audio_masks=audio_masks, audio_parts=audio_parts,
        )
        with self._wake:
            heapq.heappush(self._waiting, (handle.priority, handle.seq, handle))
            self._wake.notify()
        return handle

    def cancel(self, handle: ChunkHandle) -> None:
        """A waiting chunk is dropped; a running one frees its row at the next step."""
        with self._wake:
            handle.cancel_requested = True
            self._wake.notify()

    def pending(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self.slots)

    # --- the loop (decode thread) -------------------------------------------------------------

    def step(self) -> int:
        """Drop cancelled chunks, admit waiting ones into free rows, advance every active row by
        one semantic token, retire the finished. Returns the rows decoded."""
        import torch

        with torch.inference_mode():
            self._drop_cancelled()
            self._admit()
            n = len(self.slots)
            if n:
                self._decode(n)
                self.steps += 1
                self.tokens += n
                self.widest = max(self.widest, n)
                if self.on_step is not None:
                    self.on_step(n)
            return n

    def serve(self, stop: threading.Event, idle_wait_s: float = 0.05) -> None:
        """The decode thread's body. A failing step fails the chunks it held, loudly, and the
        loop goes on with the next ones."""
        while not stop.is_set():
            with self._wake:
                if not self._waiting and not self.slots:
                    self._wake.wait(idle_wait_s)
                    continue
            try:
                self.step()
            except Exception as exc:
                log.exception("Fish Speech's batched decode step failed; its chunks fail")
                self.fail_all(exc)
        self.fail_all(RuntimeError("Fish Speech's decoder stopped"))

    def fail_all(self, exc: BaseException) -> None:
        with self._lock:
            waiting, self._waiting = [h for *_, h in self._waiting], []
        running, self.slots = self.slots, []
        for handle in [*running, *waiting]:
            handle.error = exc
            handle.finish("failed")

    def _drop_cancelled(self) -> None:
        with self._lock:
            if any(h.cancel_requested for *_, h in self._waiting):
                for *_, h in self._waiting:
                    if h.cancel_requested:
                        h.finish("cancelled")
                self._waiting = [e for e in self._waiting if not e[2].cancel_requested]
                heapq.heapify(self._waiting)
            gone = [r for r, h in enumerate(self.slots) if h.cancel_requested]
        for r in sorted(gone, reverse=True):
            handle = self.slots[r]
            self._remove_row(r)
            handle.finish("cancelled")

    def _admit(self) -> None:
        while len(self.slots) < self.max_batch:
            with self._lock:
                if not self._waiting:
                    return
                _, _, handle = heapq.heappop(self._waiting)
            if handle.cancel_requested:
                handle.finish("cancelled")
                continue
            try:
                self._prefill(handle)
            except Exception as exc:  # one bad chunk must not stop the batch
                handle.error = exc
                if self.slots and self.slots[-1] is handle:
                    self.slots.pop()
                handle.finish("failed")

    def _prefill(self, h: ChunkHandle) -> None:
        import torch
        from fish_speech.models.text2semantic.inference import decode_one_token_ar

        m, r = self.model, len(self.slots)
        h.generator = torch.Generator(device=self.device)
        if h.seed is not None:
            h.generator.manual_seed(fish_seed(h.seed))
        else:
            h.generator.seed()
        temp, top_p, rep = (_sampling_param(v) for v in (h.temperature, h.top_p, h.repetition_penalty))
        length = int(h.encoded.size(1))
        prompt = h.encoded.view(1, self.codebooks + 1, -1)
        # Fish's own prefill on the model's batch-1 caches, drawing from this chunk's stream
        saved = torch.get_rng_state()
        torch.set_rng_state(h.generator.get_state())
        try:
            first = decode_one_token_ar(m, prompt, torch.arange(0, length, device=self.device), temp, top_p, rep,
                                        h.audio_masks, h.audio_parts)
            h.generator.set_state(torch.get_rng_state())
        finally:
            torch.set_rng_state(saved)
        for li, layer in enumerate(m.layers):
            self.k[li][r, :, :length] = layer.attention.kv_cache.k_cache[0, :, :length]
            self.v[li][r, :, :length] = layer.attention.kv_cache.v_cache[0, :, :length]
        h.first_token = first.view(-1).to(torch.int)
        h.num_decode = h.max_new_tokens - 1
        self.pos[r] = length
        self.step_idx[r] = 0
        self.cur[r] = h.first_token
        self.hist[r].zero_()
        self.temp[r], self.top_p[r], self.rep[r] = temp, top_p, rep
        self.slots.append(h)
        self.admitted.append(h.id)
        h.state = "running"
        h.generated = 1

    def _remove_row(self, r: int) -> None:
        last = len(self.slots) - 1
        if r != last:
            filled = int(self.pos[last])
            for li in range(len(self.k)):
                self.k[li][r, :, :filled] = self.k[li][last, :, :filled]
                self.v[li][r, :, :filled] = self.v[li][last, :, :filled]
            steps = int(self.step_idx[last])
            for t in (self.pos, self.step_idx, self.cur, self.temp, self.top_p, self.rep):
                t[r] = t[last]
            # columns past `steps` are still zero in the moved row, and Fish's window reads
            # [:16] while i < 16: the zeros must come along (the freed row holds old tokens)
            width = max(steps, WINDOW)
            self.hist[r, :, :width] = self.hist[last, :, :width]
            self.slots[r] = self.slots[last]
        self.slots.pop()

    # --- the model, batched ------------------------------------------------------------------

    def _attended(self, n: int) -> int:
        return min(int(self.cache_len), (n + ATTN_MULTIPLE - 1) // ATTN_MULTIPLE * ATTN_MULTIPLE)

    def _embed(self, inp: Any) -> Any:
        """BaseTransformer.forward_generate's input embedding (no audio parts: decode steps)."""
        import torch

        m, cfg = self.model, self.cfg
        embeds = [m.codebook_embeddings(inp[:, i + 1] + i * cfg.codebook_size) for i in range(cfg.num_codebooks)]
        vq_sum = torch.stack(embeds, dim=1).sum(dim=1)
        vq_mask = (inp[:, 0] >= self.sem_begin) & (inp[:, 0] <= self.sem_end)
        vq_sum[~vq_mask] = 0
        x = m.embeddings(inp[:, 0]) + vq_sum
        if cfg.scale_codebook_embeddings:
            x = torch.where(vq_mask.unsqueeze(-1).expand_as(x), x / math.sqrt(cfg.num_codebooks + 1), x)
        return x

    def _slow(self, x: Any, pos: Any, mask: Any, n: int, attended: int) -> Any:
        """The slow transformer over x [n, 1, dim], row i at position pos[i] (cache row i)."""
        import torch
        import torch.nn.functional as F  # noqa: N812
        from fish_speech.models.text2semantic.llama import apply_rotary_emb
        from torch.nn.attention import SDPBackend, sdpa_kernel

        freqs = self.model.freqs_cis[pos]  # [n, hd/2, 2]
        rows = torch.arange(n, device=x.device)
        for li, layer in enumerate(self.model.layers):
            a = layer.attention
            q, k, v = _projections(layer, x, n)
            # RoPE per row: Fish's apply_rotary_emb broadcasts over dim 0, so the rows go into the
            # sequence dimension (elementwise: the same numbers per element)
            q = apply_rotary_emb(q.reshape(1, n, a.n_head, a.head_dim), freqs).view(n, 1, a.n_head, a.head_dim)
            k = apply_rotary_emb(k.reshape(1, n, a.n_local_heads, a.head_dim), freqs).view(n, a.n_local_heads,
                                                                                           a.head_dim)
            self.k[li][rows, :, pos] = k
            self.v[li][rows, :, pos] = v.view(n, a.n_local_heads, a.head_dim)
            keys = self.k[li][:n, :, :attended].repeat_interleave(a.n_head // a.n_local_heads, dim=1)
            values = self.v[li][:n, :, :attended].repeat_interleave(a.n_head // a.n_local_heads, dim=1)
            with sdpa_kernel(SDPBackend.MATH):  # decode_n_tokens' choice
                y = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask, dropout_p=0.0)
            x = _layer_out(layer, x, y, n)
        return x

    def _fast(self, x: Any, c: int, n: int) -> Any:
        """forward_generate_fast for n rows, all at codebook position c."""
        import torch
        import torch.nn.functional as F  # noqa: N812
        from fish_speech.models.text2semantic.llama import apply_rotary_emb

        m = self.model
        x = x.view(n, 1, -1)
        input_pos = torch.tensor([c], device=x.device, dtype=torch.long)
        mask = m.causal_mask[None, None, input_pos, : self.codebooks]
        freqs = m.fast_freqs_cis[input_pos]
        for li, layer in enumerate(m.fast_layers):
            a = layer.attention
            q, k, v = _projections(layer, x, n)
            q, k = apply_rotary_emb(q, freqs), apply_rotary_emb(k, freqs)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            self.fast_k[li][:n, :, c] = k[:, :, 0]
            self.fast_v[li][:n, :, c] = v[:, :, 0]
            keys = self.fast_k[li][:n].repeat_interleave(a.n_head // a.n_local_heads, dim=1)
            values = self.fast_v[li][:n].repeat_interleave(a.n_head // a.n_local_heads, dim=1)
            if a.use_sdpa:
                y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=0.0)
            else:
                y = a.eq_scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=0.0)
            x = _layer_out(layer, x, y, n)
        return m.fast_output(m.fast_norm(x))

    def _sample(self, logits: Any, prev: Any, n: int) -> Any:
        """Fish's logits_to_probs + multinomial_sample_one_no_sync, per row. logits [n, V]."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        if prev is not None:
            prev = prev.long()
            score = torch.gather(logits, dim=-1, index=prev)
            score = torch.where(score < 0, score * self.rep[:n], score / self.rep[:n])
            logits = logits.scatter(dim=-1, index=prev, src=score)
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cum_probs = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cum_probs > self.top_p[:n]
        remove[:, 0] = False  # keep at least one option, per row
        logits = logits.masked_fill(remove.scatter(dim=-1, index=sorted_indices, src=remove), -float("Inf"))
        probs = F.softmax(logits / torch.clip(self.temp[:n], min=1e-5), dim=-1)
        noise = torch.empty_like(probs)
        for i, handle in enumerate(self.slots[:n]):  # each chunk's own stream, in Fish's draw order
            noise[i].exponential_(1, generator=handle.generator)
        return torch.argmax(probs / noise, dim=-1).to(dtype=torch.int)

    def _heads(self, x: Any, n: int, window: Any) -> Any:
        """From slow hidden states [n, 1, dim]: the semantic token, then the fast transformer over
        the codebooks. [n, num_codebooks + 1], as decode_one_token_ar returns per row."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        m = self.model
        slow_out = m.norm(x)
        logits = F.linear(slow_out, m.embeddings.weight) if self.cfg.tie_word_embeddings else m.output(slow_out)
        hidden = m.fast_project_in(x)
        main = self._sample(logits[:, -1], window[:, :, 0], n)
        for t in self.fast_k + self.fast_v:
            t[:n].fill_(0)
        self._fast(hidden, 0, n)
        first = main - self.sem_begin
        first[first < 0] = 0
        hs = m.fast_embeddings(first)
        codes = [main, first]
        for c in range(1, self.codebooks):
            logits_c = self._fast(hs, c, n)
            token = self._sample(logits_c[:, -1, :1024], window[:, c + 1], n)
            hs = m.fast_embeddings(token)
            codes.append(token)
        return torch.stack(codes, dim=1)

    def _decode(self, n: int) -> None:
        import torch

        pos = self.pos[:n]
        x = self._embed(self.cur[:n].view(n, self.codebooks + 1, 1))
        attended = self._attended(int(pos.max()) + 1)
        mask = (torch.arange(attended, device=self.device)[None, :] <= pos[:, None])[:, None, None, :]
        x = self._slow(x, pos, mask, n, attended)
        # the repetition-penalty window, decode_n_tokens' way: [:, :16] while i < 16, then [i-16, i)
        i = self.step_idx[:n]
        start = torch.clamp(i - WINDOW, min=0)
        idx = start[:, None] + torch.arange(WINDOW, device=self.device)[None, :]
        window = torch.gather(self.hist[:n], 2, idx[:, None, :].expand(n, self.codebooks + 1, WINDOW))
        codes = self._heads(x, n, window)
        self.hist[:n].scatter_(2, i.view(n, 1, 1).expand(n, self.codebooks + 1, 1), codes.unsqueeze(-1))
        self.cur[:n] = codes
        self.pos[:n] += 1
        self.step_idx[:n] += 1
        ended = (codes[:, 0] == self.im_end).tolist()
        steps = self.step_idx[:n].tolist()
        done = []
        for r, handle in enumerate(self.slots):
            handle.generated += 1
            if ended[r] or steps[r] >= handle.num_decode:
                done.append(r)
        for r in sorted(done, reverse=True):
            handle = self.slots[r]
            generated = torch.cat([handle.first_token.view(-1, 1), self.hist[r, :, : steps[r]]], dim=1)
            handle.codes = generated[1:, :-1].clone()  # generate_long: y[1:, prompt_length:-1]
            self._remove_row(r)
            handle.finish("done")


def _projections(layer: Any, x: Any, n: int) -> tuple[Any, Any, Any]:
    """A transformer block's q, k, v for n rows of one position: [n, 1, heads, head_dim]."""
    a = layer.attention
    q_size, kv_size = a.n_head * a.head_dim, a.n_local_heads * a.head_dim
    q, k, v = a.wqkv(layer.attention_norm(x)).split([q_size, kv_size, kv_size], dim=-1)
    q = q.view(n, 1, a.n_head, a.head_dim)
    k = k.view(n, 1, a.n_local_heads, a.head_dim)
    v = v.view(n, 1, a.n_local_heads, a.head_dim)
    if a.attention_qk_norm:
        q, k = a.q_norm(q), a.k_norm(k)
    return q, k, v


def _layer_out(layer: Any, x: Any, y: Any, n: int) -> Any:
    """The block's output from its attention's y [n, heads, 1, head_dim]: wo, residual, feed-forward."""
    a = layer.attention
    h = x + a.wo(y.transpose(1, 2).contiguous().view(n, 1, a.n_head * a.head_dim))
    return h + layer.feed_forward(layer.ffn_norm(h))


@dataclass
class BatchedWorker:
    """The decoder and its thread, bound to the TTS device."""

    decoder: BatchedSemanticDecoder
    thread: threading.Thread
    stop_event: threading.Event
    device: str

    def stop(self) -> None:
        self.stop_event.set()


def start_batched_worker(checkpoint_path: str, device: str, precision: Any, max_batch: int,
                         on_step: Callable[[int], None] | None = None) -> BatchedWorker:
    """Load the model on its own thread (bound to `device`) and serve the decoder there; raise
    what loading raised."""
    from monolith.providers.fish_tts.worker import load_model, start_thread

    stop = threading.Event()

    def load() -> BatchedSemanticDecoder:
        model, _ = load_model(checkpoint_path, device, precision, compile=False)  # eager: shapes change per step
        decoder = BatchedSemanticDecoder(model, max_batch)
        decoder.on_step = on_step
        return decoder

    decoder, thread = start_thread("fish-batched", device, load, lambda d: d.serve(stop))
    return BatchedWorker(decoder, thread, stop, device)
