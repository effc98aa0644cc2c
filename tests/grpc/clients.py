"""Tests of `whatstyle ai` with gRPC clients we did not write: Python grpcio (stubs generated
from proto/ by grpcio-tools) for unary, streaming, deadlines, cancellation, health and the
errors a client can hit; and raw HTTP/2 (the h2 library) for what stock clients never send:
malformed frames, oversized messages, bad headers, a server-side deadline.

Usage: clients.py HOST:PORT GEN_DIR (run by tests/cli/ai_grpc.sh, which starts the server
with --max-message-kb 64 and a trained user "maya")."""
import socket
import sys
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
from grpc_health.v1 import health_pb2, health_pb2_grpc

addr, gen = sys.argv[1], sys.argv[2]
sys.path.insert(0, gen)
from whatstyle.ai.v1 import ai_pb2, ai_pb2_grpc  # noqa: E402

failures = []


def check(name, cond, detail=""):
    if not cond:
        failures.append(name)
        print(f"FAIL: {name} {detail}")


def code_of(fn):
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


ch = grpc.insecure_channel(addr)
ai = ai_pb2_grpc.AiServiceStub(ch)
health = health_pb2_grpc.HealthStub(ch)
req = ai_pb2.GenerateRequest(user_id="maya", message="are you coming tonight?",
                             context=[ai_pb2.Turn(author="Tom", text="party at 8")])

# unary
r = ai.GenerateResponse(req, timeout=30)
check("unary reply", len(r.reply) > 0 and 0 <= r.confidence <= 1 and r.model_version.startswith("maya-"), r)
check("unary timing", r.processing_ms > 0)

# server streaming: pieces, then done with the figures; the pieces make the reply
toks = list(ai.StreamResponse(req, timeout=30))
check("stream ends with done", toks and toks[-1].done and toks[-1].model_version.startswith("maya-"))
check("stream has pieces", len(toks) >= 2 and "".join(t.text for t in toks[:-1]).strip() != "")
check("stream: done carries the reply", toks and toks[-1].reply != "" and toks[-1].text == "")
check("stream: the pieces spell the reply unless it fell back",
      toks and (toks[-1].fallback or "".join(t.text for t in toks[:-1]) == toks[-1].reply), toks)
# real tokens as generated: several messages, pieces arrive before done; the pieces are whole
# characters (grpcio would refuse a string that is not UTF-8); cancelling after the first
# piece stops the call with CANCELLED
spelled = 0
for i, m in enumerate(["what time is the party", "omg did u see that", "are we still on for tomorrow?",
                       "who is driving", "lol what happened"]):
    t0, arrivals, pieces = time.monotonic(), [], []
    for t in ai.StreamResponse(ai_pb2.GenerateRequest(user_id="maya", message=m), timeout=30):
        arrivals.append(time.monotonic() - t0)
        pieces.append(t)
    ok = pieces and pieces[-1].done and all(not p.done for p in pieces[:-1]) and \
        (len(pieces) >= 2 or pieces[-1].fallback)  # a generation refused at once has no piece
    check("stream %d: pieces then done" % i, ok, pieces)
    if ok and not pieces[-1].fallback:
        spelled += 1
        check("stream %d: pieces spell the reply" % i, "".join(p.text for p in pieces[:-1]) == pieces[-1].reply)
    if ok:
        check("stream %d: first piece before done" % i, arrivals[0] <= arrivals[-1])
print("streamed: %d of 5 spelled by their pieces" % spelled)
it = ai.StreamResponse(ai_pb2.GenerateRequest(user_id="maya", message="tell me a long story please"), timeout=30)
first = next(it)
it.cancel()
c = code_of(lambda: list(ai.StreamResponse(req, timeout=0.002)))
check("stream deadline exceeded", c == grpc.StatusCode.DEADLINE_EXCEEDED, c)
check("stream cancelled after its first piece", not first.done and code_of(lambda: list(it)) == grpc.StatusCode.CANCELLED)

# concurrency: 16 calls at once on one channel
res = []
def one():
    res.append(ai.GenerateResponse(req, timeout=60).reply)
ts = [threading.Thread(target=one) for _ in range(16)]
[t.start() for t in ts]
[t.join() for t in ts]
check("16 concurrent unary calls", len(res) == 16 and all(res))

# deadlines: one too short ends DEADLINE_EXCEEDED; the server keeps serving
c = code_of(lambda: ai.GenerateResponse(req, timeout=0.002))
check("deadline exceeded", c == grpc.StatusCode.DEADLINE_EXCEEDED, c)

# cancellation of a stream and of a unary future; the server keeps serving
it = ai.StreamResponse(req, timeout=30)
it.cancel()
check("stream cancelled", code_of(lambda: list(it)) == grpc.StatusCode.CANCELLED)
fut = ai.GenerateResponse.future(req, timeout=30)
fut.cancel()
check("unary cancelled", fut.cancelled())
check("serving after cancellations", ai.GenerateResponse(req, timeout=30).reply != "")

# errors a client can hit
c = code_of(lambda: ai.GenerateResponse(ai_pb2.GenerateRequest(user_id="nobody", message="hi"), timeout=10))
check("unknown user NOT_FOUND", c == grpc.StatusCode.NOT_FOUND, c)
c = code_of(lambda: ai.GenerateResponse(ai_pb2.GenerateRequest(user_id="maya"), timeout=10))
check("empty message INVALID_ARGUMENT", c == grpc.StatusCode.INVALID_ARGUMENT, c)
c = code_of(lambda: ai.GenerateResponse(ai_pb2.GenerateRequest(message="hi"), timeout=10))
check("no user INVALID_ARGUMENT", c == grpc.StatusCode.INVALID_ARGUMENT, c)
c = code_of(lambda: ai.GenerateResponse(ai_pb2.GenerateRequest(user_id="maya", message="x" * 70000), timeout=10))
check("oversized request RESOURCE_EXHAUSTED", c == grpc.StatusCode.RESOURCE_EXHAUSTED, c)
raw = ch.unary_unary("/whatstyle.ai.v1.AiService/GenerateResponse")
c = code_of(lambda: raw(b"\x0a\xff\xff\xff\x0f", timeout=10))
check("bad protobuf INVALID_ARGUMENT", c == grpc.StatusCode.INVALID_ARGUMENT, c)
c = code_of(lambda: ch.unary_unary("/whatstyle.ai.v1.AiService/Nope")(b"", timeout=10))
check("unknown method UNIMPLEMENTED", c == grpc.StatusCode.UNIMPLEMENTED, c)
c = code_of(lambda: ch.unary_unary("/no.Such/Service")(b"", timeout=10))
check("unknown service UNIMPLEMENTED", c == grpc.StatusCode.UNIMPLEMENTED, c)

# the other methods
p = ai.GetStyleProfile(ai_pb2.UserRequest(user_id="maya"), timeout=10)
check("style profile", '"emoji"' in p.json)
st = ai.ModelStatus(ai_pb2.ModelStatusRequest(), timeout=10)
check("model status lists maya", any(m.user_id == "maya" and m.bytes > 0 for m in st.resident), st)
rl = ai.ReloadUserModel(ai_pb2.UserRequest(user_id="maya"), timeout=10)
check("reload of a resident model", rl.was_resident)
st = ai.ModelStatus(ai_pb2.ModelStatusRequest(), timeout=10)
check("reload dropped it", not any(m.user_id == "maya" for m in st.resident), st)

# health: Check and Watch
h = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
check("health SERVING", h.status == health_pb2.HealthCheckResponse.SERVING)
h = health.Check(health_pb2.HealthCheckRequest(service="whatstyle.ai.v1.AiService"), timeout=5)
check("health of AiService SERVING", h.status == health_pb2.HealthCheckResponse.SERVING)
c = code_of(lambda: health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5))
check("health of an unknown service NOT_FOUND", c == grpc.StatusCode.NOT_FOUND, c)
w = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
check("watch SERVING", next(w).status == health_pb2.HealthCheckResponse.SERVING)
w.cancel()
ch.close()

# ---- raw HTTP/2: what stock clients never send ----
host, port = addr.rsplit(":", 1)


def raw_call(path, body, headers=None, end=True, wait=10.0):
    """One request on a fresh connection; returns (response headers, data, trailers, reset)."""
    s = socket.create_connection((host, int(port)), timeout=wait)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    hdrs = headers or [(":method", "POST"), (":scheme", "http"), (":path", path),
                       (":authority", addr), ("content-type", "application/grpc"), ("te", "trailers")]
    conn.send_headers(1, hdrs, end_stream=(body is None))
    parts = body if isinstance(body, list) else [body] if body is not None else []
    for i, part in enumerate(parts):
        conn.send_data(1, part, end_stream=end and i == len(parts) - 1)
    s.sendall(conn.data_to_send())
    resp, data, trailers, reset = None, b"", None, None
    deadline = time.time() + wait
    while time.time() < deadline and trailers is None and reset is None:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                resp = dict((k.decode(), v.decode()) for k, v in ev.headers)
                if "grpc-status" in resp:
                    trailers = resp
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, 1)
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = dict((k.decode(), v.decode()) for k, v in ev.headers)
            elif isinstance(ev, h2.events.StreamReset):
                reset = ev.error_code
        s.sendall(conn.data_to_send())
    s.close()
    return resp, data, trailers, reset


def frame(msg, flag=0):
    return bytes([flag]) + len(msg).to_bytes(4, "big") + msg


gen_path = "/whatstyle.ai.v1.AiService/GenerateResponse"
good = req.SerializeToString()
_, data, tr, _ = raw_call(gen_path, frame(good))
check("raw: good call OK", tr and tr.get("grpc-status") == "0" and len(data) > 5, tr)
# the message split across DATA frames inside its prefix and body
f = frame(good)
_, data, tr, _ = raw_call(gen_path, [f[:2], f[2:4], f[4:9], f[9:]])
check("raw: message across four DATA frames OK", tr and tr.get("grpc-status") == "0" and len(data) > 5, tr)
_, _, tr, _ = raw_call(gen_path, frame(good)[:-4])
check("raw: truncated message INTERNAL", tr and tr.get("grpc-status") == "13", tr)
_, _, tr, _ = raw_call(gen_path, frame(good, flag=1))
check("raw: compressed flag without encoding UNIMPLEMENTED", tr and tr.get("grpc-status") == "12", tr)
_, _, tr, _ = raw_call(gen_path, frame(good, flag=7))
check("raw: bad flag INTERNAL", tr and tr.get("grpc-status") == "13", tr)
_, _, tr, _ = raw_call(gen_path, b"\x00\x7f\xff\xff\xff" + b"x" * 100, end=False)
check("raw: length prefix over the cap RESOURCE_EXHAUSTED", tr and tr.get("grpc-status") == "8", tr)
_, _, tr, _ = raw_call(gen_path, frame(good) + frame(good))
check("raw: two messages on a unary call rejected", tr and tr.get("grpc-status") not in (None, "0"), tr)
_, _, tr, _ = raw_call(gen_path, b"")
check("raw: no message rejected", tr and tr.get("grpc-status") not in (None, "0"), tr)
_, _, tr, _ = raw_call(gen_path, frame(b"\x12\x05ab"))
check("raw: truncated protobuf INVALID_ARGUMENT", tr and tr.get("grpc-status") == "3", tr)
resp, _, tr, _ = raw_call(gen_path, frame(good), headers=[
    (":method", "POST"), (":scheme", "http"), (":path", gen_path), (":authority", addr),
    ("content-type", "application/json")])
check("raw: wrong content-type 415", resp and resp.get(":status") == "415", resp)
resp, _, tr, _ = raw_call(gen_path, frame(good), headers=[
    (":method", "POST"), (":scheme", "http"), (":path", gen_path), (":authority", addr),
    ("content-type", "application/grpc"), ("grpc-timeout", "soon")])
check("raw: malformed grpc-timeout INVALID_ARGUMENT", tr and tr.get("grpc-status") == "3", tr)
# the server enforces the deadline itself (this client never gives up): Trailers-Only 4
t0 = time.time()
resp, data, tr, _ = raw_call(gen_path, frame(good), headers=[
    (":method", "POST"), (":scheme", "http"), (":path", gen_path), (":authority", addr),
    ("content-type", "application/grpc"), ("grpc-timeout", "1m")])
check("raw: server-side deadline DEADLINE_EXCEEDED", tr and tr.get("grpc-status") == "4" and data == b"", (tr, data))
check("raw: deadline answered at once", time.time() - t0 < 2.0, time.time() - t0)
# a status message is percent-encoded
_, _, tr, _ = raw_call("/whatstyle.ai.v1.AiService/Nope%", frame(b""))
check("raw: grpc-message percent-encoded", tr and tr.get("grpc-status") == "12" and "%25" in tr.get("grpc-message", ""), tr)

# garbage instead of the HTTP/2 preface: the connection is closed, the server keeps serving
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x00" * 100)
try:
    rest = s.recv(4096)
    while rest:
        rest = s.recv(4096)
except OSError:
    pass
s.close()
ch = grpc.insecure_channel(addr)
check("serving after garbage", ai_pb2_grpc.AiServiceStub(ch).GenerateResponse(req, timeout=30).reply != "")
ch.close()

# keepalive: an idle connection gets a PING from the server (started with --keepalive-s 1)
s = socket.create_connection((host, int(port)), timeout=5)
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
s.sendall(conn.data_to_send())
pinged, t0 = False, time.time()
while not pinged and time.time() - t0 < 4:
    chunk = s.recv(65536)
    if not chunk:
        break
    pinged = any(isinstance(ev, h2.events.PingReceived) for ev in conn.receive_data(chunk))
    s.sendall(conn.data_to_send())
s.close()
check("keepalive PING on an idle connection", pinged and time.time() - t0 >= 0.9, time.time() - t0)

print(f"clients.py: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
