#!/usr/bin/env python3
"""Fixed-rate latency probe for bench/run (confluent-kafka; no consumer group needed).

  latency.py produce  --broker H:P --topics a,b --rate 10000 --size 1024 --duration 10
  latency.py consume  --broker H:P --topics a,b --partitions 6 --duration 15

The producer sends --rate messages/s, paced in 5 ms ticks (no busy loop), acks=all,
linger.ms=0 (--linger; a lingering client adds its own wait, up to linger.ms, to every
message's latency, which would hide the broker's); each value starts with the send time (time.time_ns()) so the consumer can compute
end-to-end latency on the same clock. The producer reports produce->ack latency (delivery report),
the consumer send->receive latency; both print one JSON object on stdout.
The consumer assigns every partition from offset 0 (topics are fresh) and prints "READY" on
stderr once assigned.
"""
import argparse
import json
import random
import struct
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, KafkaError


def pct(samples, q):
    if not samples:
        return None
    s = sorted(samples)
    i = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[i]


def summary(lat_us, warmup_frac=0.05):
    n = len(lat_us)
    lat = lat_us[int(n * warmup_frac):] if n > 20 else lat_us
    return {"count": n, "p50_ms": _ms(pct(lat, 50)), "p99_ms": _ms(pct(lat, 99)),
            "p999_ms": _ms(pct(lat, 99.9)), "max_ms": _ms(max(lat) if lat else None)}


def _ms(us):
    return None if us is None else round(us / 1000.0, 3)


def produce(a):
    topics = a.topics.split(",")
    p = Producer({"bootstrap.servers": a.broker, "acks": "all", "linger.ms": a.linger,
                  "queue.buffering.max.messages": 1000000, "client.id": "fluxo-bench-lat"})
    lat = []
    errors = [0]
    pad = b"x" * max(0, a.size - 8)

    def dr(err, msg):
        now = time.time_ns()
        if err is not None:
            errors[0] += 1
            return
        sent = struct.unpack(">q", msg.value()[:8])[0]
        lat.append((now - sent) / 1000.0)

    # Connect and learn partitions before the clock starts.
    md = p.list_topics(timeout=30)
    parts = {t: len(md.topics[t].partitions) for t in topics}
    tick = 0.005
    per_tick = a.rate * tick
    start = time.monotonic()
    end = start + a.duration
    sent = 0
    owed = 0.0
    next_t = start
    i = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_t:
            owed += per_tick
            while owed >= 1:
                t = topics[i % len(topics)]
                i += 1
                val = struct.pack(">q", time.time_ns()) + pad
                while True:
                    try:
                        p.produce(t, val, partition=random.randrange(parts[t]), on_delivery=dr)
                        break
                    except BufferError:
                        p.poll(0.001)
                sent += 1
                owed -= 1
            next_t += tick
        p.poll(max(0.0, next_t - time.monotonic()))
    elapsed = time.monotonic() - start
    left = p.flush(30)
    out = {"sent": sent, "acked": len(lat), "errors": errors[0], "unflushed": left,
           "rate": round(sent / elapsed, 1), "produce_ack": summary(lat)}
    print(json.dumps(out), flush=True)


def consume(a):
    topics = a.topics.split(",")
    c = Consumer({"bootstrap.servers": a.broker, "group.id": "fluxo-bench-lat",
                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                  "client.id": "fluxo-bench-lat-consumer",
                  "fetch.wait.max.ms": a.fetch_wait_max})
    tps = [TopicPartition(t, p, 0) for t in topics for p in range(a.partitions)]
    c.assign(tps)
    print("READY", file=sys.stderr, flush=True)
    lat = []
    end = time.monotonic() + a.duration
    while time.monotonic() < end:
        # poll() hands over each message as soon as it is fetched (consume(n) would wait to
        # fill a batch of n and add that wait to the latency).
        m = c.poll(0.2)
        now = time.time_ns()
        for m in ([m] if m is not None else []):
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consume error: {m.error()}", file=sys.stderr)
                continue
            v = m.value()
            if v and len(v) >= 8:
                lat.append((now - struct.unpack(">q", v[:8])[0]) / 1000.0)
        if a.expect and len(lat) >= a.expect:
            break
    c.close()
    out = {"received": len(lat), "end_to_end": summary(lat)}
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["produce", "consume"])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--topics", required=True)
    ap.add_argument("--rate", type=float, default=10000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--linger", type=int, default=0)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--fetch-wait-max", type=int, default=500,
                    help="consumer fetch.wait.max.ms (librdkafka's default: 500)")
    ap.add_argument("--expect", type=int, default=0, help="consumer: stop after N messages")
    a = ap.parse_args()
    produce(a) if a.mode == "produce" else consume(a)


if __name__ == "__main__":
    main()
