// Peer benchmark: parse an export with the npm package whatsapp-chat-parser and print the
// message count (so the work cannot be skipped). Usage: node whatsapp_chat_parser.mjs FILE
import { readFileSync } from "node:fs";
import { parseString } from "whatsapp-chat-parser";

const text = readFileSync(process.argv[2], "utf8");
const messages = parseString(text, { daysFirst: true });
console.log(messages.length);
