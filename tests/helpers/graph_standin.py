#!/usr/bin/env python3
"""A stand-in for the WhatsApp Cloud API's Graph endpoint (the real one cannot be reached from
the test machines): a real HTTP server on loopback that checks every request the way Graph
does -- the path /{version}/{phone-number-id}/messages, the bearer token of that number, the
JSON body's shape (a text message or a read receipt) -- and answers with the documented
success bodies and error objects. Every request is appended to a JSON-lines log for the test
to inspect.

Recipients whose number is in SCRIPT get scripted answers:
  15550130429 -> the first two sends fail with 130429 (throughput reached), then success
  15550131047 -> 131047 (re-engagement: outside the 24-hour window), always
Usage: graph_standin.py PORT_FILE LOG_FILE VERSION PHONE_NUMBER_ID=TOKEN [...]"""
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, log_file, version = sys.argv[1], sys.argv[2], sys.argv[3]
tokens = dict(a.split("=", 1) for a in sys.argv[4:])
lock = threading.Lock()
sends = {}


def graph_error(code, message, etype="OAuthException", subcode=None):
    err = {"message": message, "type": etype, "code": code, "fbtrace_id": "A" + secrets.token_hex(8)}
    if subcode:
        err["error_subcode"] = subcode
    return {"error": err}


def check_shape(body):
    """None when body is a valid text message or read receipt, else what is wrong."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if body.get("status") == "read":
        return None if isinstance(body.get("message_id"), str) and body["message_id"] else "message_id missing"
    if body.get("type") != "text":
        return "type must be text"
    text = body.get("text")
    if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"].strip():
        return "text.body missing"
    if len(text["body"]) > 4096:
        return "text.body too long"
    to, rcpt = body.get("to"), body.get("recipient")
    if not (isinstance(to, str) and to) and not (isinstance(rcpt, str) and rcpt):
        return "to or recipient required"
    ctx = body.get("context")
    if ctx is not None and not (isinstance(ctx, dict) and isinstance(ctx.get("message_id"), str)):
        return "context.message_id must be a string"
    return None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, obj, entry):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        entry["status"] = status
        entry["answer"] = obj
        with lock, open(log_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        entry = {"path": self.path}
        parts = self.path.split("/")
        if len(parts) != 4 or parts[0] != "" or parts[1] != version or parts[3] != "messages":
            return self.answer(400, graph_error(100, "Unsupported post request.", "GraphMethodException", 33), entry)
        number = parts[2]
        entry["number"] = number
        auth = self.headers.get("Authorization", "")
        if number not in tokens or auth != "Bearer " + tokens[number]:
            entry["bad_token"] = True
            return self.answer(401, graph_error(190, "Invalid OAuth access token - Cannot parse access token"), entry)
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self.answer(400, graph_error(100, "Invalid parameter"), entry)
        try:
            body = json.loads(raw)
        except ValueError:
            return self.answer(400, graph_error(100, "Invalid parameter"), entry)
        entry["body"] = body
        problem = check_shape(body)
        if problem:
            entry["shape_error"] = problem
            return self.answer(400, graph_error(100, "(#100) Invalid parameter: " + problem), entry)
        if body.get("status") == "read":
            return self.answer(200, {"success": True}, entry)
        to = body.get("to") or body.get("recipient")
        with lock:
            sends[to] = sends.get(to, 0) + 1
            k = sends[to]
        if to == "15550130429" and k <= 2:
            return self.answer(400, graph_error(130429, "(#130429) Rate limit hit"), entry)
        if to == "15550131047":
            return self.answer(400, graph_error(131047, "(#131047) Re-engagement message"), entry)
        wamid = "wamid.HBgL" + secrets.token_hex(12).upper()
        contact = {"input": to, "wa_id": to} if body.get("to") else {"input": to, "user_id": to}
        return self.answer(200, {"messaging_product": "whatsapp", "contacts": [contact],
                                 "messages": [{"id": wamid}]}, entry)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.replace(port_file + ".tmp", port_file)
server.serve_forever()
