/*
 * kokoro-nb player: streams speech from the kernel and plays it gaplessly with Web Audio.
 *
 * Wire protocol (anywidget custom messages: a JSON object plus binary buffers)
 * ---------------------------------------------------------------------------
 * Kernel → browser, for stream S (an integer ≥ 1 that grows by one per stream in a widget):
 *   {type:"start", stream:S, rate, title, voice, speed, queue, chars}
 *       A new stream. queue=false: every other player on the page falls silent;
 *       queue=true: playback waits for the players started before it. chars (the text's
 *       length) only feeds the progress bar's estimate of the total length.
 *   {type:"chunk", stream:S, seq:N, offset:O, piece:P, text}          buffers: [PCM]
 *       PCM: 16-bit little-endian mono at `rate`, at most 128 KiB per message. seq counts
 *       chunk messages from 0 without holes; O is the sample offset of the chunk's first
 *       sample (the sum of all earlier chunks). P is the engine's piece number: a long
 *       piece is split into several messages with the same P and text (what is said).
 *   {type:"end", stream:S, count:M, samples:T, metrics}
 *       S is complete: M chunk messages (seq 0..M-1) holding T samples in all.
 *   {type:"abort", stream:S, count:M, samples:T, reason, error}
 *       S stopped early after M chunks. reason: stopped (Stop, kokoro_nb.stop()) | superseded
 *       (a newer utterance) | error (then `error` is one line saying why) | closed (the
 *       widget was closed) | interrupted (the kernel was interrupted while the cell waited).
 * Browser → kernel:
 *   {type:"ack", stream:S, seq:N, samples:T}   every chunk up to seq N arrived (T samples)
 *   {type:"stop", stream:S}                    the user pressed stop: cancel the synthesis
 *   {type:"state", stream:S, state, position, preroll}
 *       playback state changed (position in seconds); preroll: seconds from the first chunk's
 *       arrival to the first sound, once known (what the adaptive pre-roll chose)
 * Rules: messages may arrive in any order; chunks are released in seq order and scheduled
 * at their sample offset; a message of a stream older than the newest seen is stale and
 * dropped; a message of a newer stream begins that stream (its start may come later).
 * kokoro_nb/_protocol.py mirrors these rules in Python (decode, Reassembler).
 *
 * Audio state lives with the model (initialize), not the views: anywidget holds messages
 * until initialize has run, so none is lost before a view renders, and every view of one
 * model shows the same player. Tests read window.__kokoroPlayers[id].snapshot() and the
 * data-kokoro-* attributes of the player's element.
 *
 * Pre-roll: the player starts when it predicts it can play to the end without running dry.
 * From the stream's own progress it estimates the production rate r (audio seconds per wall
 * second) and, from `chars`, how much audio is still to come (R). Smoothly, B seconds in hand
 * would last if B ≥ R·(1/r − 1); but audio comes a whole piece at a time and the engine's
 * pieces grow, so it plays the coming pieces forward (ready) and starts once each is
 * predicted to arrive before it is needed. So it starts at once when production is clearly
 * faster than real time or the stream is complete, and holds longer the slower synthesis
 * runs. If it runs dry anyway, it re-buffers by the same rule (at least REBUFFER_S) before
 * resuming, instead of stuttering piece by piece.
 */

// The pre-roll floor: playback never starts with less audio than this in hand.
const PREROLL_S = 0.1;
// A start is scheduled this far ahead, time enough for the audio thread to take the first
// source: the least wait from the first chunk to the first sound. kokoro_nb/_profile_view.py's
// PREROLL_S is this value (tests/test_player_protocol.py checks that they agree).
const START_LEAD_S = 0.03;
const SETTLING_S = 1.0; // an audio context younger than this gets the PREROLL_S lead
const REBUFFER_S = 0.5; // after running dry, hold at least this much audio before resuming
const SAFETY = 1.15; // the production rate is taken this much slower than measured
const RATE_WINDOW_S = 0.3; // measure the rate from the first piece once this much time passed
const MAX_PIECE_S = 16; // about the longest piece the engine makes (its planner caps pieces at 256 ids)
const LATE_S = 0.02; // a chunk due sooner than this is late: the timeline shifts (a stall)
// Audio per character of text at speed 1 (kokoro-nb's voices on English prose: 0.061 on the
// bench paragraph, 0.062 on Pride and Prejudice, 0.073 on a short sentence). It estimates
// the total length: for the progress bar and for the audio still to come.
const SECONDS_PER_CHAR = 0.062;
const TICK_MS = 100;
const ACTIVE = new Set(["buffering", "blocked", "queued", "playing"]);

const ICONS = {
  play: "M8 5v14l11-7z",
  pause: "M6 5h4v14H6zm8 0h4v14h-4z",
  stop: "M6 6h12v12H6z",
  download: "M12 3v10.2l3.6-3.6 1.4 1.4-6 6-6-6 1.4-1.4 3.6 3.6V3zM5 19h14v2H5z",
};

/* --- page-wide state: one AudioContext for every player, and the registry tests read --- */

function hub() {
  const g = globalThis;
  if (!g.__kokoroHub) {
    g.__kokoroHub = { ctx: null, players: new Map() };
    g.__kokoroPlayers = {};
  }
  return g.__kokoroHub;
}

function audioContext() {
  const h = hub();
  if (!h.ctx) {
    const AC = globalThis.AudioContext || globalThis.webkitAudioContext;
    try {
      // At the model's rate, chunk joins fall on exact frames; the OS mixer resamples once.
      h.ctx = new AC({ sampleRate: 24000, latencyHint: "playback" });
    } catch (_) {
      h.ctx = new AC();
    }
    h.ctx.addEventListener("statechange", () => {
      for (const p of h.players.values()) p.contextChanged();
    });
  }
  return h.ctx;
}

function bytesOf(buffer) {
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  if (ArrayBuffer.isView(buffer)) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  return null;
}

function int16Of(buffer) {
  const bytes = bytesOf(buffer);
  if (!bytes || bytes.byteLength < 2 || bytes.byteLength % 2) return null;
  return new Int16Array(bytes.slice().buffer); // a copy: aligned, and ours to keep
}

function clock(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

function wavBlob(chunks, rate, samples) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, value) => {
    for (let i = 0; i < value.length; i++) header.setUint8(offset + i, value.charCodeAt(i));
  };
  text(0, "RIFF");
  header.setUint32(4, 36 + samples * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, rate, true);
  header.setUint32(28, rate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, "data");
  header.setUint32(40, samples * 2, true);
  return new Blob([header, ...chunks.map((c) => c.pcm)], { type: "audio/wav" });
}

const SENTENCE = /[^.!?…。！？]+(?:[.!?…。！？]+["'”’)\]]*|$)\s*/g;

function sentenceAt(text, fraction) {
  const sentences = text.match(SENTENCE) || [text];
  const total = sentences.reduce((n, x) => n + x.length, 0) || 1;
  let seen = 0;
  for (const sentence of sentences) {
    seen += sentence.length;
    if (seen / total > fraction) return sentence.trim();
  }
  return sentences[sentences.length - 1].trim();
}

function newStream(id) {
  return {
    id,
    rate: 24000,
    title: "",
    voice: "",
    speed: 1,
    queue: false,
    chars: 0,
    began: performance.now(),
    firstMs: null, // when the first chunk was released (performance.now())
    pieces: [], // the engine's pieces as released: {piece, size, samples (all so far), at}
    pending: new Map(), // seq → chunk, waiting for the chunks before it
    chunks: [], // released in seq order: {seq, offset, n, piece, text, pcm, buffer}
    arrival: [], // seqs in the order they arrived (tests check reordering)
    arrivalMs: [], // when each arrived, ms after the stream began
    next: 0, // the next seq to release
    samples: 0, // samples released (contiguous)
    gaps: 0, // chunks whose offset did not continue the previous one (never, by protocol)
    final: null, // the end or abort message
    complete: false,
  };
}

/* --- one player: receives a model's streams, schedules them, drives its views --- */

class Player {
  constructor(model) {
    this.model = model;
    this.id = model.get("player_id");
    this.s = null;
    this.state = "idle";
    this.stale = 0;
    this.views = new Set();
    this.sources = [];
    this.gain = null;
    this.sched = []; // what the current run scheduled: {seq, offset, samples, when, duration, stall}
    this.t0 = 0; // context time at which sample 0 of the stream plays
    this.pos0 = 0; // the sample this run started from
    this.next = 0; // index into s.chunks of the next chunk to schedule
    this.pausedAt = 0;
    this.stalls = 0;
    this.stallCount = 0;
    this.wantPlay = false;
    this.firstAudioMs = null; // from the stream's first message to its first scheduled audio
    this.firstAudioAt = null; // performance.now() of that moment
    this.preroll = null; // seconds from the first chunk's arrival to the first sound
    this.dry = false; // playback ran dry: re-buffering before the next chunk is scheduled
    this.rebuffers = 0; // how often that happened
    this.timer = null;
  }

  send(content) {
    try {
      this.model.send(content);
    } catch (_) {
      /* no kernel (a reopened notebook): nothing to tell */
    }
  }

  /* receiving */

  onMessage(msg, buffers) {
    if (!msg || typeof msg.type !== "string") return;
    const id = Number(msg.stream);
    if (!Number.isInteger(id) || id < 1) return;
    if (this.s && id < this.s.id) {
      this.stale += 1;
      return;
    }
    if (!this.s || id > this.s.id) this.begin(id);
    const s = this.s;
    if (msg.type === "start") {
      s.rate = Number(msg.rate) || 24000;
      s.title = String(msg.title || "");
      s.voice = String(msg.voice || "");
      s.speed = Number(msg.speed) || 1;
      s.queue = Boolean(msg.queue);
      s.chars = Number(msg.chars) || 0;
      if (!s.queue) silenceOthers(this);
    } else if (msg.type === "chunk") {
      this.receive(s, msg, buffers);
    } else if (msg.type === "end" || msg.type === "abort") {
      s.final = {
        kind: msg.type,
        count: Number(msg.count) || 0,
        samples: Number(msg.samples) || 0,
        reason: String(msg.reason || ""),
        error: String(msg.error || ""),
        metrics: msg.metrics || null,
      };
      // Stopped from the kernel (a newer utterance, %kokoro stop): fall silent too. An
      // error keeps playing what did arrive.
      if (msg.type === "abort" && msg.reason !== "error" && ACTIVE.has(this.state)) {
        this.pausedAt = this.position();
        this.halt();
        this.wantPlay = false;
        this.setState("stopped");
      }
    } else {
      return;
    }
    this.release(s);
    this.pump();
    this.refresh();
  }

  receive(s, msg, buffers) {
    const seq = Number(msg.seq);
    const pcm = int16Of(buffers && buffers[0]);
    if (!Number.isInteger(seq) || seq < s.next || s.pending.has(seq) || !pcm) return;
    s.arrival.push(seq);
    s.arrivalMs.push(Math.round(performance.now() - s.began));
    s.pending.set(seq, {
      seq,
      offset: Number(msg.offset) || 0,
      n: pcm.length,
      piece: Number(msg.piece) || 0,
      text: String(msg.text || ""),
      pcm,
      buffer: null,
    });
  }

  release(s) {
    let moved = false;
    while (s.pending.has(s.next)) {
      const chunk = s.pending.get(s.next);
      s.pending.delete(s.next);
      if (chunk.offset !== s.samples) s.gaps += 1;
      s.chunks.push(chunk);
      s.samples = chunk.offset + chunk.n;
      const last = s.pieces[s.pieces.length - 1];
      if (last && last.piece === chunk.piece) last.size += chunk.n;
      else s.pieces.push({ piece: chunk.piece, size: chunk.n, samples: 0, at: 0 });
      s.pieces[s.pieces.length - 1].samples = s.samples;
      s.pieces[s.pieces.length - 1].at = performance.now();
      s.next += 1;
      moved = true;
    }
    if (moved && s.firstMs === null) s.firstMs = performance.now();
    const wasComplete = s.complete;
    s.complete = Boolean(s.final) && s.next >= s.final.count;
    if (moved || s.complete !== wasComplete) {
      this.send({ type: "ack", stream: s.id, seq: s.next - 1, samples: s.samples });
    }
    if ((moved || s.complete !== wasComplete) && this.state === "playing") this.scheduleMore();
  }

  begin(id) {
    this.halt();
    this.s = newStream(id);
    this.sched = [];
    this.stalls = 0;
    this.stallCount = 0;
    this.pausedAt = 0;
    this.firstAudioMs = null;
    this.firstAudioAt = null;
    this.preroll = null;
    this.dry = false;
    this.rebuffers = 0;
    this.wantPlay = true;
    this.setState("buffering");
  }

  /* playing */

  productionRate() {
    // Audio seconds made per wall second, up to the last piece's arrival: since the first
    // piece once they are RATE_WINDOW_S apart, else over the whole stream (start-up
    // included: low, so cautious).
    const s = this.s;
    const first = s.pieces[0];
    const last = s.pieces[s.pieces.length - 1];
    const span = (last.at - first.at) / 1000;
    if (span >= RATE_WINDOW_S) return (s.samples - first.samples) / s.rate / span;
    return s.samples / s.rate / Math.max((last.at - s.began) / 1000, 1e-3);
  }

  ready(from, floor) {
    // Can playback started now from sample `from` run to the end without running dry?
    // Audio comes a whole piece at a time and pieces grow, so predict the pieces still to
    // come (each `growth` times the last, up to what remains) arriving back to back at the
    // production rate, and check that each arrives before playback needs it.
    const s = this.s;
    if (s.complete) return s.samples > from;
    const held = (s.samples - from) / s.rate;
    if (held < floor) return false;
    const rate = this.productionRate() / SAFETY;
    if (!(rate > 0)) return false;
    const n = s.pieces.length;
    const lastPiece = s.pieces[n - 1].size / s.rate;
    const growth = n > 1 ? Math.min(Math.max(lastPiece / (s.pieces[n - 2].size / s.rate), 1), 3) : 2;
    let remaining = Math.max(0, this.totalEstimate() - s.samples) / s.rate;
    const now = performance.now();
    let arrives = s.pieces[n - 1].at; // ms, page clock
    let needed = now + START_LEAD_S * 1000 + held * 1000; // when playback runs out without it
    let size = lastPiece;
    while (remaining > 1e-3) {
      size = Math.min(size * growth, MAX_PIECE_S, remaining);
      arrives = Math.max(arrives + (size / rate) * 1000, now);
      if (arrives > needed) return false;
      needed += size * 1000;
      remaining -= size;
    }
    return true;
  }

  pump() {
    const s = this.s;
    if (!s || !this.wantPlay || this.state === "playing" || !s.chunks.length) return;
    if (!this.ready(0, PREROLL_S)) return;
    const ctx = audioContext();
    if (ctx.state !== "running") {
      // Resolves at once when the page already had a user gesture; else the button shows.
      ctx.resume().catch(() => {});
      this.setState("blocked");
      return;
    }
    let notBefore = 0;
    if (s.queue) {
      notBefore = busyUntil(this);
      if (notBefore === Infinity) {
        this.setState("queued");
        return;
      }
    }
    this.startAt(0, notBefore);
  }

  contextChanged() {
    if (audioContext().state === "running" && this.wantPlay) this.pump();
    this.refresh();
  }

  startAt(position, notBefore = 0) {
    const s = this.s;
    const ctx = audioContext();
    this.halt();
    // A context that has only just started has not settled its clock: its first start
    // scheduled 30 ms ahead can already be in the past (seen in Chromium), so it gets more.
    const lead = ctx.currentTime < SETTLING_S ? PREROLL_S : START_LEAD_S;
    let start = Math.max(ctx.currentTime + lead, notBefore);
    start = Math.ceil(start * ctx.sampleRate) / ctx.sampleRate; // on a frame boundary
    this.t0 = start - position / s.rate;
    if (this.preroll === null) {
      const sound = performance.now() + (start - ctx.currentTime) * 1000;
      this.preroll = (sound - (s.firstMs ?? s.began)) / 1000;
    }
    this.pos0 = position;
    this.next = 0;
    this.sched = [];
    this.dry = false;
    this.gain = ctx.createGain();
    this.gain.connect(ctx.destination);
    this.wantPlay = false;
    this.setState("playing");
    this.scheduleMore();
  }

  scheduleMore() {
    const s = this.s;
    const ctx = audioContext();
    while (this.next < s.chunks.length) {
      const chunk = s.chunks[this.next++];
      if (chunk.offset + chunk.n <= this.pos0) continue;
      const skip = Math.max(0, this.pos0 - chunk.offset);
      let when = this.t0 + (chunk.offset + skip) / s.rate;
      let stall = 0;
      const due = ctx.currentTime + LATE_S;
      if (when < due) {
        // Late (synthesis fell behind): hold until playing on is predicted to last (the
        // tick retries), then push the rest of the timeline back, never overlapping.
        if (!this.dry) this.rebuffers += 1;
        this.dry = true;
        if (!this.ready(chunk.offset + skip, REBUFFER_S)) {
          this.next -= 1;
          break;
        }
        stall = Math.ceil((due - when) * ctx.sampleRate) / ctx.sampleRate;
        this.t0 += stall;
        when += stall;
        this.stalls += stall;
        this.stallCount += 1;
      }
      const source = ctx.createBufferSource();
      source.buffer = this.audioBuffer(chunk, ctx);
      source.connect(this.gain);
      source.start(when, skip / s.rate);
      source.onended = () => {
        this.sources = this.sources.filter((x) => x !== source);
      };
      this.sources.push(source);
      this.sched.push({
        seq: chunk.seq,
        offset: chunk.offset + skip,
        samples: chunk.n - skip,
        when,
        duration: (chunk.n - skip) / s.rate,
        stall,
      });
      this.dry = false;
      if (this.firstAudioMs === null) {
        this.firstAudioAt = performance.now();
        this.firstAudioMs = this.firstAudioAt - s.began;
      }
    }
    this.ensureTimer();
  }

  audioBuffer(chunk, ctx) {
    if (!chunk.buffer) {
      const buffer = ctx.createBuffer(1, chunk.n, this.s.rate);
      const data = buffer.getChannelData(0);
      for (let i = 0; i < chunk.n; i++) data[i] = chunk.pcm[i] / 32768;
      chunk.buffer = buffer;
    }
    return chunk.buffer;
  }

  halt() {
    // A short fade rather than a hard cut: cutting at non-zero amplitude clicks.
    if (this.gain) {
      const ctx = audioContext();
      this.gain.gain.setTargetAtTime(0, ctx.currentTime, 0.005);
      for (const source of this.sources) {
        try {
          source.stop(ctx.currentTime + 0.03);
        } catch (_) {
          /* already stopped */
        }
      }
    }
    this.sources = [];
    this.gain = null;
  }

  scheduledEnd() {
    const last = this.sched[this.sched.length - 1];
    return last ? last.offset + last.samples : this.pos0;
  }

  position() {
    // In samples of the current stream.
    const s = this.s;
    if (!s) return 0;
    if (this.state === "playing") {
      const now = (audioContext().currentTime - this.t0) * s.rate;
      return Math.min(Math.max(now, this.pos0), this.scheduledEnd());
    }
    if (this.state === "ended") return s.samples;
    return this.pausedAt;
  }

  tick() {
    const s = this.s;
    if (this.state === "queued" || this.state === "blocked" || this.state === "buffering") this.pump();
    if (this.state === "playing" && this.dry) this.scheduleMore();
    if (this.state === "playing" && s.complete && this.next >= s.chunks.length) {
      const end = this.t0 + this.scheduledEnd() / s.rate;
      if (audioContext().currentTime >= end) {
        this.sources = [];
        this.setState("ended");
      }
    }
    this.refresh();
    if (!ACTIVE.has(this.state)) this.stopTimer();
  }

  ensureTimer() {
    if (this.timer === null) this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  stopTimer() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    if (ACTIVE.has(state)) this.ensureTimer();
    if (this.s) {
      const position = this.position() / this.s.rate;
      const message = { type: "state", stream: this.s.id, state, position };
      if (this.preroll !== null) message.preroll = this.preroll;
      this.send(message);
    }
    this.refresh();
  }

  /* the buttons */

  toggle() {
    const ctx = audioContext();
    if (ctx.state !== "running") ctx.resume().catch(() => {}); // a click may unlock audio
    const s = this.s;
    if (!s) return;
    if (this.state === "playing") {
      this.pausedAt = this.position();
      this.halt();
      this.setState("paused");
    } else if (this.state === "blocked") {
      this.wantPlay = true;
    } else if (s.chunks.length) {
      const from = this.state === "paused" ? this.pausedAt : 0;
      if (ctx.state === "running") this.startAt(from);
      else {
        this.wantPlay = true;
        this.setState("blocked");
      }
    }
  }

  stop() {
    const s = this.s;
    this.halt();
    this.wantPlay = false;
    this.pausedAt = 0;
    if (s && !s.final) this.send({ type: "stop", stream: s.id }); // cancel what is left
    this.setState("stopped");
  }

  seek(fraction) {
    const s = this.s;
    if (!s || !s.chunks.length) return;
    const target = Math.min(Math.floor(fraction * this.totalEstimate()), s.samples - 1);
    if (this.state === "playing") this.startAt(Math.max(0, target));
    else {
      this.pausedAt = Math.max(0, target);
      if (this.state !== "paused") this.setState("paused");
      this.refresh();
    }
  }

  download() {
    const s = this.s;
    if (!s || !s.chunks.length) return;
    const url = URL.createObjectURL(wavBlob(s.chunks, s.rate, s.samples));
    const a = document.createElement("a");
    a.href = url;
    a.download = `kokoro-${(s.voice || "speech").replace(/[^\w.-]+/g, "_")}-${s.id}.wav`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  /* what the views show */

  totalEstimate() {
    const s = this.s;
    if (!s) return 1;
    if (s.final) return Math.max(s.final.samples, 1);
    const guess = (s.chars * SECONDS_PER_CHAR * s.rate) / (s.speed || 1);
    return Math.max(guess, s.samples * 1.05, 1);
  }

  currentText() {
    // The sentence being spoken: find the piece playing, then place its sentences along
    // the piece's samples in proportion to their length (the engine gives no word times).
    const s = this.s;
    if (!s || !s.chunks.length) return s ? s.title : "";
    const pos = this.position();
    let first = null;
    let end = 0;
    for (const chunk of s.chunks) {
      if (chunk.offset > pos) break;
      if (!first || chunk.piece !== first.piece) first = chunk;
      end = chunk.offset + chunk.n;
    }
    if (!first) return s.title;
    for (const chunk of s.chunks) {
      if (chunk.piece === first.piece && chunk.offset >= end) end = chunk.offset + chunk.n;
    }
    return sentenceAt(first.text, (pos - first.offset) / Math.max(1, end - first.offset));
  }

  statusText() {
    const s = this.s;
    if (!s) return "waiting for the kernel…";
    const parts = [s.voice, s.speed !== 1 ? `×${s.speed}` : ""];
    const f = s.final;
    if (f && f.kind === "abort" && f.reason === "error") parts.push(`error: ${f.error}`);
    else if (f && f.kind === "abort") parts.push(f.reason);
    else if (this.state === "blocked") parts.push("audio is paused by the browser");
    else if (this.state === "queued") parts.push("queued");
    else if (!s.chunks.length) parts.push("synthesizing…");
    else if (!f) parts.push("streaming");
    if (this.state === "playing" && !s.complete && this.position() >= this.scheduledEnd() - 1) {
      parts.push("waiting for audio…");
    }
    const m = f && f.metrics;
    if (m && typeof m.audio_s === "number" && typeof m.total_s === "number") {
      parts.push(`${m.audio_s.toFixed(1)} s of audio in ${m.total_s.toFixed(1)} s`);
      if (typeof m.ttfa_s === "number") parts.push(`first audio ${m.ttfa_s.toFixed(2)} s`);
    }
    return parts.filter(Boolean).join(" · ");
  }

  refresh() {
    for (const update of this.views) update();
  }

  snapshot() {
    const s = this.s;
    const ctx = hub().ctx;
    return {
      id: this.id,
      state: this.state,
      context: ctx ? ctx.state : "none",
      contextRate: ctx ? ctx.sampleRate : 0,
      stale: this.stale,
      views: this.views.size,
      stream: s ? s.id : 0,
      title: s ? s.title : "",
      rate: s ? s.rate : 0,
      received: s ? s.next : 0,
      arrival: s ? s.arrival.slice() : [],
      arrivalMs: s ? s.arrivalMs.slice() : [],
      samples: s ? s.samples : 0,
      gaps: s ? s.gaps : 0,
      complete: s ? s.complete : false,
      final: s && s.final ? { ...s.final } : null,
      scheduled: this.sched.map((x) => ({ ...x })),
      stalls: this.stalls,
      stallCount: this.stallCount,
      firstAudioMs: this.firstAudioMs,
      firstAudioAt: this.firstAudioAt,
      preroll: this.preroll,
      rebuffers: this.rebuffers,
      position: this.position() / (s ? s.rate : 24000),
    };
  }
}

function silenceOthers(me) {
  for (const p of hub().players.values()) {
    if (p !== me && ACTIVE.has(p.state)) {
      p.halt();
      p.wantPlay = false;
      p.pausedAt = p.position();
      p.setState("stopped");
    }
  }
}

function busyUntil(me) {
  // When audio of players started before `me` ends (context time); Infinity: not known yet.
  let until = 0;
  for (const p of hub().players.values()) {
    if (p === me || !p.s) continue;
    if (p.state === "playing") {
      if (!p.s.complete) return Infinity;
      until = Math.max(until, p.t0 + p.scheduledEnd() / p.s.rate);
    } else if (ACTIVE.has(p.state) && p.s.began < me.s.began) {
      return Infinity;
    }
  }
  return until;
}

/* --- views --- */

function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.appendChild(path);
  return svg;
}

function element(tag, className, parent) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (parent) parent.appendChild(el);
  return el;
}

function button(className, label, iconName, parent) {
  const b = element("button", `kp-button ${className}`, parent);
  b.type = "button";
  b.title = label;
  b.setAttribute("aria-label", label);
  if (iconName) b.appendChild(icon(iconName));
  return b;
}

function view(player, el) {
  el.classList.add("kokoro-player");
  const root = element("div", "kp-root", el);
  const row = element("div", "kp-row", root);
  const play = button("kp-play", "Play", "play", row);
  const stop = button("kp-stop", "Stop", "stop", row);
  const main = element("div", "kp-main", row);
  const bar = element("div", "kp-bar", main);
  bar.setAttribute("role", "slider");
  bar.setAttribute("aria-label", "Position (arrow keys seek)");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.tabIndex = 0;
  const buffered = element("div", "kp-buffered", bar);
  const played = element("div", "kp-played", bar);
  const text = element("div", "kp-text", main);
  text.setAttribute("aria-live", "polite");
  const time = element("span", "kp-time", row);
  const save = button("kp-download", "Download WAV", "download", row);
  const blocked = element("div", "kp-blocked", root);
  const unlock = button("kp-unlock", "Click to play", "play", blocked);
  unlock.appendChild(document.createTextNode("Click to play"));
  const why = element("span", "kp-why", blocked);
  why.textContent = "The browser holds audio until you interact with the page; it keeps buffering.";
  const status = element("div", "kp-status", root);

  play.addEventListener("click", () => player.toggle());
  unlock.addEventListener("click", () => player.toggle());
  stop.addEventListener("click", () => player.stop());
  save.addEventListener("click", () => player.download());
  bar.addEventListener("click", (event) => {
    const box = bar.getBoundingClientRect();
    if (box.width > 0) player.seek((event.clientX - box.left) / box.width);
  });
  bar.addEventListener("keydown", (event) => {
    const step = { ArrowLeft: -5, ArrowRight: 5 }[event.key];
    if (!step || !player.s) return;
    event.preventDefault();
    const total = player.totalEstimate();
    player.seek((player.position() + step * player.s.rate) / total);
  });

  const update = () => {
    const s = player.s;
    const total = player.totalEstimate();
    const pos = player.position();
    const playing = player.state === "playing";
    el.dataset.kokoroPlayer = player.id;
    el.dataset.kokoroState = player.state;
    el.dataset.kokoroStream = String(s ? s.id : 0);
    el.dataset.kokoroChunks = String(s ? s.next : 0);
    el.dataset.kokoroComplete = String(Boolean(s && s.complete));
    if (play.dataset.icon !== (playing ? "pause" : "play")) {
      play.dataset.icon = playing ? "pause" : "play";
      play.replaceChildren(icon(play.dataset.icon));
      play.title = playing ? "Pause" : "Play";
      play.setAttribute("aria-label", play.title);
    }
    play.disabled = !s || (!s.chunks.length && player.state !== "blocked");
    stop.disabled = !s || !(ACTIVE.has(player.state) || player.state === "paused" || !s.final);
    save.disabled = !s || !s.chunks.length;
    buffered.style.width = `${Math.min(100, (100 * (s ? s.samples : 0)) / total)}%`;
    played.style.width = `${Math.min(100, (100 * pos) / total)}%`;
    bar.setAttribute("aria-valuenow", String(Math.round((100 * pos) / total)));
    root.classList.toggle("kp-streaming", Boolean(s && !s.final));
    blocked.hidden = player.state !== "blocked";
    const rate = s ? s.rate : 24000;
    time.textContent = `${clock(pos / rate)} / ${clock((s ? s.samples : 0) / rate)}${s && !s.final ? "+" : ""}`;
    text.textContent = player.currentText(); // textContent: user text is never parsed as HTML
    status.textContent = player.statusText();
  };
  player.views.add(update);
  update();
  return () => player.views.delete(update);
}

export default {
  initialize({ model }) {
    const player = new Player(model);
    const h = hub();
    h.players.set(player.id, player);
    globalThis.__kokoroPlayers[player.id] = player;
    const onMessage = (msg, buffers) => player.onMessage(msg, buffers || []);
    model.on("msg:custom", onMessage);
    return () => {
      model.off("msg:custom", onMessage);
      player.halt();
      player.stopTimer();
      h.players.delete(player.id);
      delete globalThis.__kokoroPlayers[player.id];
    };
  },
  render({ model, el }) {
    let player = hub().players.get(model.get("player_id"));
    if (!player) {
      // Not registered (initialize ran under another id): a silent, inert player.
      player = new Player(model);
    }
    return view(player, el);
  },
};
