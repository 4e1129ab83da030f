#!/usr/bin/env python3
"""Hand-made GGUF headers for the fuzz corpus (tests/fuzz/corpus/gguf): small files whose tensor
data is left out (the fuzz target pads it with zeros)."""
import struct, sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)

def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack('<Q', len(x)) + x

def kv(key, t, v):
    out = s(key) + struct.pack('<I', t)
    if t == STR: return out + s(v)
    if t == U32: return out + struct.pack('<I', v)
    if t == I32: return out + struct.pack('<i', v)
    if t == F32: return out + struct.pack('<f', v)
    if t == BOOL: return out + struct.pack('<B', v)
    if t == ARR:
        et, items = v
        out += struct.pack('<IQ', et, len(items))
        if et == STR: return out + b''.join(s(i) for i in items)
        if et == I32: return out + b''.join(struct.pack('<i', i) for i in items)
        if et == F32: return out + b''.join(struct.pack('<f', i) for i in items)
    raise ValueError(t)

def gguf(kvs, tensors, align=32):
    """kvs: encoded KV bytes; tensors: (name, dims, type, nbytes); offsets laid out in order."""
    hdr = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kvs)) + b''.join(kvs)
    off = 0
    for name, dims, typ, nbytes in tensors:
        hdr += s(name) + struct.pack('<I', len(dims)) + b''.join(struct.pack('<Q', d) for d in dims)
        hdr += struct.pack('<IQ', typ, off)
        off += (nbytes + align - 1) // align * align
    return hdr + b'\0' * ((align - len(hdr) % align) % align)

def tiny_llama(ctx=2048, extra=()):
    """The smallest llama the loader takes: n_embd 2, one layer, one head, n_ff 1, vocab 3."""
    E, F = 2, 1
    kvs = [kv('general.architecture', STR, 'llama'),
           kv('llama.context_length', U32, ctx),
           kv('llama.embedding_length', U32, E),
           kv('llama.block_count', U32, 1),
           kv('llama.feed_forward_length', U32, F),
           kv('llama.attention.head_count', U32, 1),
           kv('tokenizer.ggml.model', STR, 'llama'),
           kv('tokenizer.ggml.tokens', ARR, (STR, ['<unk>', '<s>', '</s>']))] + list(extra)
    f32 = lambda *d: (d, 0, 4 * eval('*'.join(map(str, d))))
    ts = [('token_embd.weight',) + f32(E, 3), ('output_norm.weight',) + f32(E)]
    for n, d in [('attn_norm', (E,)), ('attn_q', (E, E)), ('attn_k', (E, E)), ('attn_v', (E, E)),
                 ('attn_output', (E, E)), ('ffn_norm', (E,)), ('ffn_gate', (E, F)), ('ffn_up', (E, F)),
                 ('ffn_down', (F, E))]:
        ts.append(('blk.0.%s.weight' % n,) + f32(*d))
    return gguf(kvs, ts)

if __name__ == '__main__':
    what, path = sys.argv[1], sys.argv[2]
    if what == 'tiny': data = tiny_llama()
    elif what == 'ctx-u32max': data = tiny_llama(ctx=0xFFFFFFFF)
    elif what == 'ctx0': data = tiny_llama(ctx=0)
    elif what == 'key-newline':
        data = b'GGUF' + struct.pack('<IQQ', 3, 0, 1) + s('bad\nkey\r\x1b[2J') + struct.pack('<I', 99)
    else: raise SystemExit('unknown: ' + what)
    open(path, 'wb').write(data)
