// A loopback reverse proxy that adds "Authorization: Bearer KEY" to every request, for
// clients that cannot send headers (the MCP conformance suite). Streams both ways.
// Usage: node auth_proxy.mjs LISTEN_PORT TARGET_PORT KEY
import http from "node:http";

const [listen, target, key] = process.argv.slice(2);
http
  .createServer((req, res) => {
    const headers = { ...req.headers, authorization: `Bearer ${key}`, host: `127.0.0.1:${target}` };
    const up = http.request({ host: "127.0.0.1", port: Number(target), method: req.method, path: req.url, headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", (e) => {
      res.writeHead(502);
      res.end(String(e));
    });
    req.pipe(up);
  })
  .listen(Number(listen), "127.0.0.1", () => console.log(`proxy on ${listen} -> ${target}`));
