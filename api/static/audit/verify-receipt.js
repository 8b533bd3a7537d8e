/*
 * The donor's own check of a receipt, in the browser (docs/audit.md).
 *
 * Given the JSON of GET /api/receipts/{receipt_no} and the log's verifier key (what
 * `ledger audit public-key` prints, shown on the transparency page), it checks with WebCrypto
 * only (SHA-256 and Ed25519; no library, nothing fetched):
 *
 *   1. the verifier key: its key id is SHA-256(name || 0x0A || 0x01 || public key)[:4];
 *   2. the checkpoint: a C2SP signed note signed by that key, of the key's origin, whose size
 *      and root are the receipt's;
 *   3. the leaf: if the receipt carries the leaf data, SHA-256(0x00 || data) is its leaf hash;
 *   4. the inclusion proof (RFC 9162 §2.1.3.2): the leaf hash at its index leads to the
 *      signed root.
 *
 * Usage:  const result = await LedgerReceipt.verifyReceipt(receiptJson, verifierKey);
 *   result.ok        true only if every check held
 *   result.checks    [{name, ok, detail}] in order; a check that could not run (a browser
 *                    without Ed25519 in WebCrypto, say) has ok === null and says why
 *   result.size, result.root (base64), result.origin: the checked checkpoint
 *
 * The page that embeds it must still work without it, and say what it could not check.
 */
(function (global) {
  "use strict";

  const EM_DASH = "\u2014";
  const encoder = new TextEncoder();

  function b64decode(text) {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  function b64encode(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary);
  }

  function concat(...parts) {
    const length = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(length);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  async function nodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  /* name+hexid+base64(0x01 || 32-byte key); split at the first two '+' only. */
  async function parseVerifierKey(vkey) {
    const text = String(vkey).trim();
    const first = text.indexOf("+");
    const second = text.indexOf("+", first + 1);
    if (first < 1 || second < 0) throw new Error("not a verifier key (name+id+key)");
    const name = text.slice(0, first);
    const keyId = text.slice(first + 1, second);
    const material = b64decode(text.slice(second + 1));
    if (!/^[0-9a-f]{8}$/.test(keyId)) throw new Error("the key id is not 8 hex digits");
    if (material.length !== 33 || material[0] !== 1) {
      throw new Error("not an Ed25519 note key (type 0x01, 32 bytes)");
    }
    const digest = await sha256(concat(encoder.encode(name + "\n"), material));
    if (hex(digest.slice(0, 4)) !== keyId) throw new Error("the key id does not match the key");
    return { name, keyId, publicKey: material.slice(1) };
  }

  /* The note's text (through its last newline before the blank line) and signature lines. */
  function parseNote(note) {
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new Error("not a signed note (no blank line)");
    const text = note.slice(0, split + 1);
    const lines = note.slice(split + 2).split("\n").filter((l) => l !== "");
    const signatures = lines.map((line) => {
      const parts = line.split(" ");
      if (parts.length !== 3 || parts[0] !== EM_DASH) throw new Error("a bad signature line");
      const raw = b64decode(parts[2]);
      return { name: parts[1], keyId: hex(raw.slice(0, 4)), signature: raw.slice(4) };
    });
    return { text, signatures };
  }

  async function verifyEd25519(publicKey, signature, data) {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, [
      "verify",
    ]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, data);
  }

  /* RFC 9162 §2.1.3.2: the root an inclusion proof leads to. */
  async function rootFromInclusionProof(leafHash, index, size, proof) {
    if (!(index >= 0 && index < size)) throw new Error(`leaf ${index} is not in a tree of ${size}`);
    let fn = index;
    let sn = size - 1;
    let r = leafHash;
    for (const p of proof) {
      if (sn === 0) throw new Error("the proof is too long");
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("the proof is too short");
    return r;
  }

  async function verifyReceipt(receipt, verifierKey) {
    const checks = [];
    const result = { ok: false, checks, size: null, root: null, origin: null };
    const check = (name, ok, detail) => {
      checks.push({ name, ok, detail });
      return ok;
    };
    if (!global.crypto || !crypto.subtle) {
      check("webcrypto", null, "this browser has no WebCrypto: nothing could be checked here");
      return result;
    }
    let key;
    try {
      key = await parseVerifierKey(verifierKey);
      check("key", true, `${key.name} (key id ${key.keyId})`);
    } catch (e) {
      check("key", false, e.message);
      return result;
    }
    let size;
    let root;
    try {
      const note = parseNote(receipt.checkpoint);
      const lines = note.text.split("\n");
      const origin = lines[0];
      size = Number(lines[1]);
      root = b64decode(lines[2]);
      result.origin = origin;
      result.size = size;
      result.root = lines[2];
      const mine = note.signatures.find((s) => s.name === key.name && s.keyId === key.keyId);
      if (!mine) {
        check("signature", false, "the checkpoint is not signed by this key");
        return result;
      }
      let signed;
      try {
        signed = await verifyEd25519(key.publicKey, mine.signature, encoder.encode(note.text));
      } catch (e) {
        check("signature", null, `this browser cannot verify Ed25519 (${e.name}): not checked`);
        signed = null;
      }
      if (signed === false) {
        check("signature", false, "the checkpoint's signature does not verify");
        return result;
      }
      if (signed) check("signature", true, `signed by ${key.name}`);
      if (!check("origin", origin === key.name, `a checkpoint of ${origin}`)) return result;
      const same = size === Number(receipt.tree_size) && lines[2] === receipt.root;
      if (!check("checkpoint", same, `size ${size}, root ${lines[2]}`)) return result;
    } catch (e) {
      check("checkpoint", false, e.message);
      return result;
    }
    const recorded = b64decode(receipt.leaf_hash);
    if (receipt.leaf) {
      const computed = await sha256(concat(Uint8Array.of(0), encoder.encode(receipt.leaf)));
      if (!check("leaf", equal(computed, recorded), "the leaf data hashes to the leaf hash")) {
        return result;
      }
    } else {
      check("leaf", null, "the leaf data is not public (it holds the donation's private fields)");
    }
    try {
      const proof = receipt.inclusion_proof.map(b64decode);
      const computed = await rootFromInclusionProof(recorded, receipt.leaf_index, size, proof);
      check(
        "inclusion",
        equal(computed, root),
        `leaf ${receipt.leaf_index} of ${size} leads to ${b64encode(computed)}`,
      );
    } catch (e) {
      check("inclusion", false, e.message);
    }
    result.ok = checks.every((c) => c.ok === true || (c.name === "leaf" && c.ok === null));
    return result;
  }

  global.LedgerReceipt = { verifyReceipt, parseVerifierKey, rootFromInclusionProof };
})(typeof window !== "undefined" ? window : globalThis);
