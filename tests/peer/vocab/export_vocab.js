// Extracts the vocabularies shipped in the npm packages llama-tokenizer-js (Llama 2, 32K
// SentencePiece BPE) and llama3-tokenizer-js (Llama 3, 128K byte-level BPE) into the plain
// text format that make_vocab_gguf.c reads:
//
//   hllm-vocab 1
//   model <llama|gpt2>      pre <name|->      name <general.name>
//   bos <id>  eos <id>  eot <id>  unk <id>  (only those that apply)
//   add_bos <0|1>  add_eos <0|1>
//   tokens <N>              then N lines "<type> <score> <hex of the UTF-8 bytes>"
//   merges <M>              then M lines "<hex of the UTF-8 bytes of 'left right'>"
//
// Usage: node export_vocab.js NODE_MODULES_DIR OUTDIR
//        node export_vocab.js NODE_MODULES_DIR --encode llama2|llama3 STRINGS.txt OUT.txt
// The second form tokenizes each line of STRINGS.txt (escapes as in strings.txt) with the
// package's own encoder (BOS added, no EOS) and writes one line of ids per string.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

async function loadPackage(nm, name) {
  const dir = path.join(nm, name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const mod = await import(pathToFileURL(path.join(dir, pkg.main)).href);
  return { version: pkg.version, tok: mod.default };
}

const hex = (s) => (s.length ? Buffer.from(s, 'utf8').toString('hex') : '-');

function write(file, header, tokens, merges) {
  const out = ['hllm-vocab 1'];
  for (const [k, v] of Object.entries(header)) out.push(`${k} ${v}`);
  out.push(`tokens ${tokens.length}`);
  for (const t of tokens) out.push(`${t.type} ${t.score} ${hex(t.text)}`);
  out.push(`merges ${merges.length}`);
  for (const m of merges) out.push(hex(m));
  fs.writeFileSync(file, out.join('\n') + '\n');
}

// Merge strings in priority order from the packages' Map("left right" -> priority).
function mergeList(map) {
  return [...map.entries()].sort((a, b) => a[1] - b[1]).map((e) => e[0]);
}

function exportLlama2(tok, file) {
  const vocab = tok.vocabById;
  if (vocab.length !== 32000) throw new Error(`llama2: expected 32000 tokens, got ${vocab.length}`);
  // The package has no scores or types. SentencePiece's BPE trainer scores the pieces it learns
  // -0, -1, -2, ... in the order it learned them, and Llama's ids follow that order after the 3
  // special and 256 byte tokens, so score = -(id - 259). The exception are the 15 runs of 2..16
  // U+2581 that Meta added for code: they share the lowest score (-1e9 in tokenizer.model).
  // Check all this against the package's merge list (HF's, sorted by the merged piece's score,
  // ties by the ids of the two halves): run merges last, all others in id order.
  const isRun = (s) => /^\u2581\u2581+$/.test(s);
  const merges = mergeList(tok.merges);
  let prev = -1, disorder = 0, runsStarted = false;
  for (const m of merges) {
    const s = m.replace(' ', '');
    const id = tok.vocabByString.get(s);
    if (isRun(s)) { runsStarted = true; continue; }
    if (id === undefined || runsStarted || id < prev) disorder++;
    prev = id;
  }
  if (disorder) throw new Error(`llama2: ${disorder} merges contradict the reconstructed scores`);
  const tokens = vocab.map((text, id) => {
    let type = 1, score = 0;
    if (id === 0) type = 2;                       // <unk>
    else if (id === 1 || id === 2) type = 3;      // <s> </s>
    else if (/^<0x[0-9A-F]{2}>$/.test(text)) type = 6;
    else score = isRun(text) ? -1e9 : -(id - 259);
    return { text, type, score };
  });
  write(file, { model: 'llama', pre: '-', name: 'llama2-vocab', bos: 1, eos: 2, unk: 0, add_bos: 1, add_eos: 0 },
        tokens, []);
}

function exportLlama3(tok, file) {
  const vocab = tok.vocabById;
  if (vocab.length !== 128256) throw new Error(`llama3: expected 128256 tokens, got ${vocab.length}`);
  const tokens = vocab.map((text, id) => ({ text, type: id >= 128000 ? 3 : 1, score: 0 }));
  const merges = mergeList(tok.merges);
  // eot is given explicitly: llama.cpp's text-based guess could pick <|end_of_text|> or <|eot_id|>.
  write(file, { model: 'gpt2', pre: 'llama-bpe', name: 'llama3-vocab', bos: 128000, eos: 128001, eot: 128009,
                add_bos: 1, add_eos: 0 }, tokens, merges);
}

// strings.txt escapes: \n \r \t \\ \xHH (one raw byte) \u{HEX} (one code point).
export function unescapeLine(line) {
  const bytes = [];
  const pushStr = (s) => bytes.push(...Buffer.from(s, 'utf8'));
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c !== '\\' || i + 1 >= line.length) { pushStr(String.fromCodePoint(line.codePointAt(i))); if (line.codePointAt(i) > 0xffff) i++; continue; }
    const d = line[++i];
    if (d === 'n') bytes.push(10);
    else if (d === 'r') bytes.push(13);
    else if (d === 't') bytes.push(9);
    else if (d === '\\') bytes.push(92);
    else if (d === 'x') { bytes.push(parseInt(line.substr(i + 1, 2), 16)); i += 2; }
    else if (d === 'u' && line[i + 1] === '{') {
      const j = line.indexOf('}', i);
      pushStr(String.fromCodePoint(parseInt(line.slice(i + 2, j), 16)));
      i = j;
    } else { bytes.push(92); pushStr(d); }
  }
  return Buffer.from(bytes);
}

async function main() {
  const [nm, a2, a3, a4, a5] = process.argv.slice(2);
  if (!nm || !a2) {
    console.error('usage: node export_vocab.js NODE_MODULES_DIR OUTDIR | --encode llama2|llama3 STRINGS OUT');
    process.exit(2);
  }
  const l2 = await loadPackage(nm, 'llama-tokenizer-js');
  const l3 = await loadPackage(nm, 'llama3-tokenizer-js');
  if (a2 === '--encode') {
    const lines = fs.readFileSync(a4, 'utf8').split('\n').filter((l) => l.length);
    const out = lines.map((l) => {
      const s = unescapeLine(l).toString('utf8'); // invalid UTF-8 becomes U+FFFD here
      const ids = a3 === 'llama2' ? l2.tok.encode(s, true, true) : l3.tok.encode(s, { bos: true, eos: false });
      return ids.join(' ');
    });
    fs.writeFileSync(a5, out.join('\n') + '\n');
    return;
  }
  fs.mkdirSync(a2, { recursive: true });
  exportLlama2(l2.tok, path.join(a2, 'llama2.vocab.txt'));
  exportLlama3(l3.tok, path.join(a2, 'llama3.vocab.txt'));
  console.log(`exported llama-tokenizer-js ${l2.version} and llama3-tokenizer-js ${l3.version} to ${a2}`);
}

main().catch((e) => { console.error(`export_vocab: ${e.stack || e}`); process.exit(1); });
