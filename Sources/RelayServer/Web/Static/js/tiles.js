// The viewer side of the tile-delta codec: TileUpdate bodies into a framebuffer.
//
// The contract is docs/PROTOCOL.md §7: the body and its session-long zlib stream §7.1, the
// part header §7.2, rectangles §7.3 and their encodings §7.4, parts §7.6, errors §7.7.
// Tests/browser/test_tile_vectors.py runs every §7.8 vector through this module in Chromium.
// The glyphs encoding (§7.4.7) needs the `glyphs` capability (§3), which the viewer announces.
//
// The protocol's pixels are bgrx8888; this framebuffer is RGBA with alpha 255, so that
// `new ImageData(decoder.pixels, decoder.width, decoder.height)` paints it as it is.
// Pixels are written as one 32-bit word each, which assumes a little-endian machine
// (every browser platform in use); the constructor refuses anything else.

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const OPAQUE = 0xff00_0000;

/** §7.7: refuse a body that inflates to more than this (enough for a raw 4K update). */
export const DEFAULT_MAXIMUM_INFLATED_BYTES = 64 << 20;
/** §5.2.1: screen sides are 1…16,384 pixels. */
export const MAXIMUM_SCREEN_DIMENSION = 16_384;

/** The §7.7 error kinds, spelled as the document (and ScreenCodecError.Kind) spells them. */
export const TileErrorKind = Object.freeze({
  truncated: 'truncated',
  trailingBytes: 'trailing bytes',
  unknownEncoding: 'unknown encoding',
  rectOutOfBounds: 'rect out of bounds',
  badPaletteIndex: 'bad palette index',
  badPaletteSize: 'bad palette size',
  runOverflow: 'run overflow',
  corruptDeflate: 'corrupt deflate',
  inflateLimitExceeded: 'inflate limit exceeded',
  sizeMismatch: 'size mismatch',
  noScreen: 'no screen',
  unexpectedPart: 'unexpected part',
  badGlyph: 'bad glyph',
  unknownGlyph: 'unknown glyph',
});

// §7.1, §7.7: the zlib stream cannot go on after a rejected body, so neither can the session.
const SESSION_ENDS =
  "This session's screen stream cannot continue (PROTOCOL.md §7.1, §7.7): end the session with " +
  'Bye(protocol_error) and connect again.';

/** A TileUpdate body the decoder rejected; `kind` is one of TileErrorKind's strings. */
export class TileError extends Error {
  constructor(kind, detail, options) {
    super(`${detail} (${kind}). ${SESSION_ENDS}`, options);
    this.name = 'TileError';
    this.kind = kind;
  }
}

// §7.3
const Encoding = Object.freeze({ copy: 1, solid: 2, packedPalette: 3, paletteRLE: 4, raw: 5, rle: 6, glyphs: 7 });
const PART_HEADER_LENGTH = 9;
const RECT_HEADER_LENGTH = 9;
const CONTINUES = 0x01;
// §7.4.7: the glyph table's slots, the largest glyph side, and the slot field's
// "a definition follows" bit.
const GLYPH_SLOTS = 2048;
const MAXIMUM_GLYPH_SIDE = 64;
const GLYPH_DEFINITION = 0x8000;

/** A glyph of the table (§7.4.7): its pixels as the framebuffer stores them, row by row. */
class Glyph {
  constructor(width, height) {
    this.width = width;
    this.height = height;
    this.pixels = new Uint32Array(width * height); // RGBA words
  }
}

/**
 * Applies TileUpdate bodies (§7) to an RGBA framebuffer, with one inflate stream for the
 * whole session. Calls to apply() run one after another in call order. After any error
 * the decoder is unusable, and apply() throws that error again.
 */
export class TileDecoder {
  #width = 0;
  #height = 0;
  #pixels = null; // Uint8ClampedArray, RGBA
  #words = null; // Uint32Array over the same memory: one pixel per element
  #inflater = new Inflater();
  #maximumInflatedBytes;
  #continuing = false;
  #continuingRequestID = 0;
  #failure = null;
  #closed = false;
  #queue = Promise.resolve();
  #running = 0;
  #rects = [];
  #snapshot = new Uint32Array(0);
  // §7.4.7: the session's glyph table, empty at the start and never reset (not by resize()).
  #glyphTable = new Array(GLYPH_SLOTS).fill(null);
  // While a part is read: the sides (width << 8 | height) of the glyphs its definitions
  // made so far, for the uses after them; a slot's entry counts when its stamp is the
  // part's number. The table itself changes only when the validated part is drawn.
  // Validation keeps nothing per glyph (no positions, no pixels): drawing reads the
  // checked bytes of the inflated part again. So a part of millions of 3-byte glyphs
  // (a 66 KB body inflates to 64 MiB, 22 million of them) costs only these two arrays
  // and the part itself, and the glyph memory is at most the table's 2,048 glyphs.
  #pendingSides = new Uint16Array(GLYPH_SLOTS);
  #pendingStamps = new Float64Array(GLYPH_SLOTS);
  #partNumber = 0;

  /**
   * A decoder for a screen of width×height (from ScreenInit); without a size it has no
   * screen until resize(). `maximumInflatedBytes` bounds what one body may inflate to.
   */
  constructor(width, height, { maximumInflatedBytes = DEFAULT_MAXIMUM_INFLATED_BYTES } = {}) {
    if (!LITTLE_ENDIAN) {
      throw new Error('TileDecoder writes pixels as little-endian 32-bit words, and this machine is ' +
        'big-endian: the screen cannot be shown in this browser.');
    }
    if (!Number.isInteger(maximumInflatedBytes) || maximumInflatedBytes < 4096) {
      throw new RangeError(`maximumInflatedBytes must be an integer of at least 4096, not ${maximumInflatedBytes}`);
    }
    this.#maximumInflatedBytes = maximumInflatedBytes;
    if (width !== undefined || height !== undefined) this.resize(width, height);
  }

  get width() {
    return this.#width;
  }

  get height() {
    return this.#height;
  }

  /** The RGBA framebuffer (alpha 255), or null before the first size. Updated in place. */
  get pixels() {
    return this.#pixels;
  }

  /**
   * ScreenInit (§5.2.1): a new black framebuffer of this size. The zlib stream and the
   * glyph table go on (§7.1, §7.4.7), and an update with parts still to come is abandoned
   * (§7.6).
   */
  resize(width, height) {
    for (const [name, value] of [['width', width], ['height', height]]) {
      if (!Number.isInteger(value) || value < 1 || value > MAXIMUM_SCREEN_DIMENSION) {
        throw new RangeError(`a screen ${name} must be an integer from 1 to ${MAXIMUM_SCREEN_DIMENSION}, ` +
          `not ${value} (PROTOCOL.md §5.2.1)`);
      }
    }
    if (this.#running > 0) {
      throw new Error('TileDecoder.resize() was called while apply() was still running: await each ' +
        'apply() before handling the next message, so that updates and ScreenInit stay in order.');
    }
    this.#width = width;
    this.#height = height;
    this.#pixels = new Uint8ClampedArray(width * height * 4);
    this.#words = new Uint32Array(this.#pixels.buffer);
    this.#words.fill(OPAQUE);
    this.#continuing = false;
  }

  /**
   * Applies one TileUpdate body (§7.1). Resolves to `{requestID, continues, dirty}`:
   * `continues` is true when more parts of the same update follow (§7.6), and `dirty` is
   * the bounding box `{x, y, width, height}` of what this part changed (for putImageData),
   * or null when the part has no rectangles. Rejects with TileError; a rejected body leaves the framebuffer as
   * it was (§7.7), and the decoder unusable.
   */
  apply(body) {
    if (!(body instanceof Uint8Array)) {
      return Promise.reject(new TypeError(`a TileUpdate body must be a Uint8Array, got ${body}`));
    }
    this.#running += 1;
    const run = this.#queue.then(() => this.#applyNow(body)).finally(() => {
      this.#running -= 1;
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Ends the inflate stream; the decoder cannot be used afterwards. */
  close() {
    this.#closed = true;
    this.#inflater.close();
  }

  async #applyNow(body) {
    if (this.#failure) throw this.#failure;
    if (this.#closed) {
      throw new Error("TileDecoder.apply() after close(): this session's decoder has ended; make a new " +
        'TileDecoder for a new session.');
    }
    try {
      return await this.#decode(body);
    } catch (error) {
      this.#failure = error;
      this.#inflater.close();
      throw error;
    }
  }

  async #decode(body) {
    if (!this.#pixels) {
      throw new TileError(TileErrorKind.noScreen,
        'a TileUpdate arrived before any ScreenInit gave the screen a size');
    }
    if (body.length < 4) {
      throw new TileError(TileErrorKind.truncated,
        `a TileUpdate body needs 4 bytes of request id, but it has ${body.length}`);
    }
    const requestID = ((body[0] << 24) | (body[1] << 16) | (body[2] << 8) | body[3]) >>> 0;
    if (this.#continuing && requestID !== this.#continuingRequestID) {
      throw new TileError(TileErrorKind.unexpectedPart,
        `update ${this.#continuingRequestID} announced another part, but a part of update ${requestID} ` +
        'arrived (§7.6)');
    }
    const zlib = body.subarray(4);
    const end = zlib.length;
    if (end < 4 || zlib[end - 4] !== 0 || zlib[end - 3] !== 0 || zlib[end - 2] !== 0xff || zlib[end - 1] !== 0xff) {
      throw new TileError(TileErrorKind.truncated,
        `the body's ${end} zlib bytes do not end in the sync flush 00 00 ff ff (§7.1)`);
    }
    const part = await this.#inflater.inflate(zlib, this.#maximumInflatedBytes);
    const continues = this.#parse(part);
    // Everything is valid: only now change the framebuffer (§7.7).
    const dirty = this.#draw(part);
    this.#continuing = continues;
    this.#continuingRequestID = requestID;
    return { requestID, continues, dirty };
  }

  // -----------------------------------------------------------------------------------
  // Reading and validating a part (§7.2–§7.4), before anything is drawn

  #parse(part) {
    const screenWidth = this.#width;
    const screenHeight = this.#height;
    const end = part.length;
    const rects = this.#rects;
    rects.length = 0;
    this.#partNumber += 1;
    let offset = 0;
    const need = (count, field) => {
      if (end - offset < count) {
        throw new TileError(TileErrorKind.truncated,
          `${field} needs ${count} bytes, but the inflated part has ${end - offset} left`);
      }
    };
    // A run length (§7.4.4): ff bytes and a last byte below ff; 1 + their sum.
    const runLength = (remaining, number) => {
      let length = 1;
      for (;;) {
        need(1, 'a run length');
        const byte = part[offset++];
        length += byte;
        if (length > remaining) {
          throw new TileError(TileErrorKind.runOverflow,
            `rectangle ${number}: a run reaches past the rectangle's last pixel (${remaining} left)`);
        }
        if (byte < 255) return length;
      }
    };

    need(PART_HEADER_LENGTH, 'the part header');
    const partWidth = (part[0] << 8) | part[1];
    const partHeight = (part[2] << 8) | part[3];
    if (partWidth !== screenWidth || partHeight !== screenHeight) {
      throw new TileError(TileErrorKind.sizeMismatch,
        `the update is for a ${partWidth}×${partHeight} screen, but the framebuffer is ` +
        `${screenWidth}×${screenHeight} (§7.2)`);
    }
    const flags = part[4];
    const count = ((part[5] << 24) | (part[6] << 16) | (part[7] << 8) | part[8]) >>> 0;
    offset = PART_HEADER_LENGTH;
    // Every rectangle takes at least 9 bytes: a larger count is a lie.
    if (count > Math.floor((end - offset) / RECT_HEADER_LENGTH)) {
      throw new TileError(TileErrorKind.truncated,
        `the part announces ${count} rectangles, but only ${end - offset} bytes follow`);
    }
    for (let number = 0; number < count; number++) {
      need(1, `rectangle ${number}'s encoding`);
      const encoding = part[offset];
      if (encoding < Encoding.copy || encoding > Encoding.glyphs) {
        throw new TileError(TileErrorKind.unknownEncoding,
          `rectangle ${number}: encoding 0x${encoding.toString(16).padStart(2, '0')} is not one of §7.3's`);
      }
      need(RECT_HEADER_LENGTH, `rectangle ${number}'s header`);
      const x = (part[offset + 1] << 8) | part[offset + 2];
      const y = (part[offset + 3] << 8) | part[offset + 4];
      const width = (part[offset + 5] << 8) | part[offset + 6];
      const height = (part[offset + 7] << 8) | part[offset + 8];
      offset += RECT_HEADER_LENGTH;
      if (width === 0 || height === 0 || x + width > screenWidth || y + height > screenHeight) {
        throw new TileError(TileErrorKind.rectOutOfBounds,
          `rectangle ${number}: ${width}×${height} at (${x}, ${y}) is empty or outside the ` +
          `${screenWidth}×${screenHeight} screen`);
      }
      const rect = {
        encoding, x, y, width, height, sourceX: 0, sourceY: 0, palette: 0, paletteSize: 0, data: 0,
      };
      const pixels = width * height;
      switch (encoding) {
        case Encoding.copy: {
          need(4, `rectangle ${number}'s copy source`);
          rect.sourceX = (part[offset] << 8) | part[offset + 1];
          rect.sourceY = (part[offset + 2] << 8) | part[offset + 3];
          offset += 4;
          if (rect.sourceX + width > screenWidth || rect.sourceY + height > screenHeight) {
            throw new TileError(TileErrorKind.rectOutOfBounds,
              `rectangle ${number}: the copy source ${width}×${height} at (${rect.sourceX}, ` +
              `${rect.sourceY}) is outside the ${screenWidth}×${screenHeight} screen`);
          }
          break;
        }
        case Encoding.solid:
          need(3, `rectangle ${number}'s colour`);
          rect.data = offset;
          offset += 3;
          break;
        case Encoding.packedPalette:
        case Encoding.paletteRLE: {
          need(1, `rectangle ${number}'s palette size`);
          const size = part[offset++];
          if (size < 2 || size > 16) {
            throw new TileError(TileErrorKind.badPaletteSize,
              `rectangle ${number}: a palette of ${size} colours; 2 to 16 are allowed`);
          }
          need(size * 3, `rectangle ${number}'s palette`);
          rect.paletteSize = size;
          rect.palette = offset;
          offset += size * 3;
          rect.data = offset;
          if (encoding === Encoding.packedPalette) {
            const bits = indexBits(size);
            const rowLength = (width * bits + 7) >> 3;
            need(rowLength * height, `rectangle ${number}'s packed indices`);
            offset += rowLength * height;
            if (size !== 1 << bits) checkPackedIndices(part, rect, bits, rowLength, number);
          } else {
            let covered = 0;
            while (covered < pixels) {
              need(1, `rectangle ${number}'s palette runs`);
              const byte = part[offset++];
              const index = byte & 0x7f;
              if (index >= size) {
                throw new TileError(TileErrorKind.badPaletteIndex,
                  `rectangle ${number}: a run of index ${index} in a palette of ${size}`);
              }
              covered += byte & 0x80 ? runLength(pixels - covered, number) : 1;
            }
          }
          break;
        }
        case Encoding.raw:
          need(pixels * 3, `rectangle ${number}'s raw pixels`);
          rect.data = offset;
          offset += pixels * 3;
          break;
        case Encoding.glyphs:
          need(3, `rectangle ${number}'s background`);
          rect.data = offset;
          offset += 3;
          offset = this.#parseGlyphBands(part, offset, rect, number);
          break;
        default: {
          // RLE
          rect.data = offset;
          let covered = 0;
          while (covered < pixels) {
            need(3, `rectangle ${number}'s run colour`);
            offset += 3;
            covered += runLength(pixels - covered, number);
          }
        }
      }
      rects.push(rect);
    }
    if (offset !== end) {
      throw new TileError(TileErrorKind.trailingBytes, `${end - offset} inflated bytes follow the last rectangle`);
    }
    return (flags & CONTINUES) !== 0;
  }

  /**
   * Reads and checks a glyphs rectangle's bands (§7.4.7) from `offset`; returns the offset
   * after them. Nothing is kept per glyph: #drawGlyphs reads the same bytes again. A
   * definition's sides count for the uses after it in this part (#pendingSides); the
   * table itself changes only in #draw, once the part is valid.
   */
  #parseGlyphBands(part, offset, rect, number) {
    const end = part.length;
    const table = this.#glyphTable;
    const pendingSides = this.#pendingSides;
    const pendingStamps = this.#pendingStamps;
    const partNumber = this.#partNumber;
    const need = (count, field) => {
      if (end - offset < count) {
        throw new TileError(TileErrorKind.truncated,
          `rectangle ${number}: ${field} needs ${count} bytes, but the inflated part has ${end - offset} left`);
      }
    };
    need(2, 'the glyph band count');
    const bands = (part[offset] << 8) | part[offset + 1];
    offset += 2;
    for (let band = 0; band < bands; band++) {
      need(4, `glyph band ${band}'s top and glyph count`);
      const top = (part[offset] << 8) | part[offset + 1];
      const count = (part[offset + 2] << 8) | part[offset + 3];
      offset += 4;
      let left = 0;
      for (let index = 0; index < count; index++) {
        // The advance is a count: ff bytes and a last byte below ff, summed (no +1).
        for (;;) {
          need(1, 'a glyph advance');
          const byte = part[offset++];
          left += byte;
          if (byte < 255) break;
        }
        need(2, 'a glyph slot');
        const field = (part[offset] << 8) | part[offset + 1];
        offset += 2;
        const slot = field & ~GLYPH_DEFINITION;
        if (slot >= GLYPH_SLOTS) {
          throw new TileError(TileErrorKind.badGlyph,
            `rectangle ${number}: glyph slot ${slot}; the glyph table has slots 0 to ${GLYPH_SLOTS - 1} (§7.4.7)`);
        }
        let width;
        let height;
        if (field & GLYPH_DEFINITION) {
          need(2, `the width and height of glyph slot ${slot}`);
          width = part[offset];
          height = part[offset + 1];
          offset += 2;
          if (width === 0 || height === 0 || width > MAXIMUM_GLYPH_SIDE || height > MAXIMUM_GLYPH_SIDE) {
            throw new TileError(TileErrorKind.badGlyph,
              `rectangle ${number}: a ${width}×${height} glyph for slot ${slot}; glyph sides are 1 to ` +
              `${MAXIMUM_GLYPH_SIDE} (§7.4.7)`);
          }
          need(1, `the palette size of glyph slot ${slot}`);
          const size = part[offset++];
          if (size > 16) {
            throw new TileError(TileErrorKind.badPaletteSize,
              `rectangle ${number}: a glyph palette of ${size} colours; 1 to 16 are allowed, or 0 for ` +
              `raw pixels (§7.4.7)`);
          }
          if (size === 0) {
            // n = 0: width × height cpixels, raw, in raster order (§7.4.7).
            need(width * height * 3, `the raw pixels of glyph slot ${slot}`);
            offset += width * height * 3;
          } else {
            need(size * 3, `the palette of glyph slot ${slot}`);
            offset += size * 3;
            const bits = indexBits(size);
            const rowLength = (width * bits + 7) >> 3;
            need(rowLength * height, `the packed indices of glyph slot ${slot}`);
            if (size !== 1 << bits) checkGlyphIndices(part, size, offset, width, height, rowLength, number);
            offset += rowLength * height;
          }
          pendingSides[slot] = (width << 8) | height;
          pendingStamps[slot] = partNumber;
        } else if (pendingStamps[slot] === partNumber) {
          width = pendingSides[slot] >> 8;
          height = pendingSides[slot] & 0xff;
        } else {
          const glyph = table[slot];
          if (!glyph) {
            throw new TileError(TileErrorKind.unknownGlyph,
              `rectangle ${number}: glyph slot ${slot} holds no glyph (§7.4.7)`);
          }
          width = glyph.width;
          height = glyph.height;
        }
        if (left + width > rect.width || top + height > rect.height) {
          throw new TileError(TileErrorKind.rectOutOfBounds,
            `rectangle ${number}: a ${width}×${height} glyph at (${left}, ${top}) reaches outside ` +
            `its ${rect.width}×${rect.height} rectangle (§7.4.7)`);
        }
      }
    }
    return offset;
  }

  // -----------------------------------------------------------------------------------
  // Drawing a validated part: copies first, then the rest in order (§7.3)

  #draw(part) {
    const words = this.#words;
    const stride = this.#width;
    const rects = this.#rects;
    let copies = 0;
    let left = Infinity;
    let top = Infinity;
    let right = -1;
    let bottom = -1;
    for (const rect of rects) {
      if (rect.encoding === Encoding.copy) copies += 1;
      left = Math.min(left, rect.x);
      top = Math.min(top, rect.y);
      right = Math.max(right, rect.x + rect.width);
      bottom = Math.max(bottom, rect.y + rect.height);
    }
    if (copies === 1) {
      // One copy may overlap itself: copyWithin moves within a row like memmove, and
      // the rows are walked away from the overlap.
      const rect = rects.find((candidate) => candidate.encoding === Encoding.copy);
      const { x, y, width, height, sourceX, sourceY } = rect;
      if (y > sourceY) {
        for (let row = height - 1; row >= 0; row--) {
          const from = (sourceY + row) * stride + sourceX;
          words.copyWithin((y + row) * stride + x, from, from + width);
        }
      } else {
        for (let row = 0; row < height; row++) {
          const from = (sourceY + row) * stride + sourceX;
          words.copyWithin((y + row) * stride + x, from, from + width);
        }
      }
    } else if (copies > 1) {
      // Every copy reads the framebuffer as it was before the part: take all the
      // sources first, then write them.
      let needed = 0;
      for (const rect of rects) if (rect.encoding === Encoding.copy) needed += rect.width * rect.height;
      if (this.#snapshot.length < needed) this.#snapshot = new Uint32Array(needed);
      const snapshot = this.#snapshot;
      let at = 0;
      for (const rect of rects) {
        if (rect.encoding !== Encoding.copy) continue;
        for (let row = 0; row < rect.height; row++) {
          const from = (rect.sourceY + row) * stride + rect.sourceX;
          snapshot.set(words.subarray(from, from + rect.width), at);
          at += rect.width;
        }
      }
      at = 0;
      for (const rect of rects) {
        if (rect.encoding !== Encoding.copy) continue;
        for (let row = 0; row < rect.height; row++) {
          words.set(snapshot.subarray(at, at + rect.width), (rect.y + row) * stride + rect.x);
          at += rect.width;
        }
      }
    }
    for (const rect of rects) {
      switch (rect.encoding) {
        case Encoding.copy:
          break;
        case Encoding.solid:
          drawSolid(words, stride, rect, colourAt(part, rect.data));
          break;
        case Encoding.packedPalette:
          drawPacked(words, stride, rect, part);
          break;
        case Encoding.paletteRLE:
          drawPaletteRuns(words, stride, rect, part);
          break;
        case Encoding.raw:
          drawRaw(words, stride, rect, part);
          break;
        case Encoding.glyphs:
          drawSolid(words, stride, rect, colourAt(part, rect.data));
          this.#drawGlyphs(rect, part);
          break;
        default:
          drawRuns(words, stride, rect, part);
      }
    }
    if (rects.length === 0) return null;
    return { x: left, y: top, width: right - left, height: bottom - top };
  }

  /**
   * A glyphs rectangle's glyphs over its background, in the order listed (§7.4.7), read
   * again from the part: #parseGlyphBands checked every byte, so nothing is checked here.
   * A definition enters the table first, so every use draws the slot's latest glyph.
   */
  #drawGlyphs(rect, part) {
    const words = this.#words;
    const stride = this.#width;
    const table = this.#glyphTable;
    let offset = rect.data + 3; // after the background
    const bands = (part[offset] << 8) | part[offset + 1];
    offset += 2;
    for (let band = 0; band < bands; band++) {
      const rowStart = (rect.y + ((part[offset] << 8) | part[offset + 1])) * stride + rect.x;
      const count = (part[offset + 2] << 8) | part[offset + 3];
      offset += 4;
      let left = 0;
      for (let index = 0; index < count; index++) {
        // The advance: ff bytes and a last byte below ff, summed.
        let byte;
        do {
          byte = part[offset++];
          left += byte;
        } while (byte === 255);
        const field = (part[offset] << 8) | part[offset + 1];
        offset += 2;
        const slot = field & ~GLYPH_DEFINITION;
        if (field & GLYPH_DEFINITION) offset = defineGlyph(table, slot, part, offset);
        // Validation saw this slot hold (here or earlier) a glyph that fits at `left`.
        const { width, height, pixels } = table[slot];
        let target = rowStart + left;
        let source = 0;
        for (let row = 0; row < height; row++) {
          for (let column = 0; column < width; column++) words[target + column] = pixels[source + column];
          target += stride;
          source += width;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Encodings (§7.4). `words` holds one RGBA pixel per element; `stride` is the screen width.

function indexBits(paletteSize) {
  return paletteSize <= 2 ? 1 : paletteSize <= 4 ? 2 : 4;
}

/** A cpixel (B, G, R) as an opaque RGBA word: bytes R, G, B, 255 in memory. */
function colourAt(bytes, offset) {
  return OPAQUE | (bytes[offset + 2]) | (bytes[offset + 1] << 8) | (bytes[offset] << 16);
}

function paletteOf(part, rect) {
  const colours = new Uint32Array(16);
  for (let entry = 0; entry < rect.paletteSize; entry++) colours[entry] = colourAt(part, rect.palette + entry * 3);
  return colours;
}

function checkPackedIndices(part, rect, bits, rowLength, number) {
  const mask = (1 << bits) - 1;
  for (let row = 0; row < rect.height; row++) {
    const line = rect.data + row * rowLength;
    for (let column = 0; column < rect.width; column++) {
      const bit = column * bits;
      const index = (part[line + (bit >> 3)] >> (8 - bits - (bit & 7))) & mask;
      if (index >= rect.paletteSize) {
        throw new TileError(TileErrorKind.badPaletteIndex,
          `rectangle ${number}: pixel (${column}, ${row}) has index ${index} in a palette of ` +
          `${rect.paletteSize}`);
      }
    }
  }
}

/** A glyph definition's packed indices (§7.4.7, packed as §7.4.3): none may be ≥ n. */
function checkGlyphIndices(part, size, data, width, height, rowLength, number) {
  const bits = indexBits(size);
  const mask = (1 << bits) - 1;
  for (let row = 0; row < height; row++) {
    const line = data + row * rowLength;
    for (let column = 0; column < width; column++) {
      const bit = column * bits;
      const index = (part[line + (bit >> 3)] >> (8 - bits - (bit & 7))) & mask;
      if (index >= size) {
        throw new TileError(TileErrorKind.badPaletteIndex,
          `rectangle ${number}: glyph pixel (${column}, ${row}) has index ${index} in a palette of ${size}`);
      }
    }
  }
}

// A definition's palette as RGBA words; one for all, as a definition is unpacked at once.
const glyphColours = new Uint32Array(16);

/**
 * Puts a validated definition (width, height, palette size, then its pixels, from
 * `definition`) into the table slot, as RGBA words: from a palette and packed indices,
 * or from raw cpixels when the palette size is 0 (§7.4.7); returns the offset after the
 * definition. A slot's old pixels are reused when their count is the same: the glyphs
 * drawn from them before are on the screen already.
 */
function defineGlyph(table, slot, part, definition) {
  const width = part[definition];
  const height = part[definition + 1];
  const size = part[definition + 2];
  let glyph = table[slot];
  if (glyph && glyph.pixels.length === width * height) {
    glyph.width = width;
    glyph.height = height;
  } else {
    glyph = new Glyph(width, height);
    table[slot] = glyph;
  }
  const pixels = glyph.pixels;
  const data = definition + 3;
  if (size === 0) {
    const count = width * height;
    for (let index = 0, source = data; index < count; index++, source += 3) {
      pixels[index] = colourAt(part, source);
    }
    return data + count * 3;
  }
  const colours = glyphColours;
  for (let entry = 0; entry < size; entry++) colours[entry] = colourAt(part, data + entry * 3);
  const bits = indexBits(size);
  const rowLength = (width * bits + 7) >> 3;
  const mask = (1 << bits) - 1;
  let line = data + size * 3;
  let target = 0;
  for (let row = 0; row < height; row++) {
    for (let column = 0; column < width; column++) {
      const bit = column * bits;
      pixels[target++] = colours[(part[line + (bit >> 3)] >> (8 - bits - (bit & 7))) & mask];
    }
    line += rowLength;
  }
  return line;
}

function drawSolid(words, stride, rect, colour) {
  for (let row = 0; row < rect.height; row++) {
    const start = (rect.y + row) * stride + rect.x;
    words.fill(colour, start, start + rect.width);
  }
}

function drawRaw(words, stride, rect, part) {
  let source = rect.data;
  const width = rect.width;
  for (let row = 0; row < rect.height; row++) {
    let target = (rect.y + row) * stride + rect.x;
    const rowEnd = target + width;
    while (target < rowEnd) {
      words[target++] = OPAQUE | part[source + 2] | (part[source + 1] << 8) | (part[source] << 16);
      source += 3;
    }
  }
}

function drawPacked(words, stride, rect, part) {
  const colours = paletteOf(part, rect);
  const bits = indexBits(rect.paletteSize);
  const rowLength = (rect.width * bits + 7) >> 3;
  const mask = (1 << bits) - 1;
  const perByte = 8 / bits;
  for (let row = 0; row < rect.height; row++) {
    let target = (rect.y + row) * stride + rect.x;
    const rowEnd = target + rect.width;
    let source = rect.data + row * rowLength;
    // Whole bytes, most significant bits first, then the row's last partial byte.
    while (rowEnd - target >= perByte) {
      const byte = part[source++];
      for (let shift = 8 - bits; shift >= 0; shift -= bits) words[target++] = colours[(byte >> shift) & mask];
    }
    if (target < rowEnd) {
      const byte = part[source];
      for (let shift = 8 - bits; target < rowEnd; shift -= bits) words[target++] = colours[(byte >> shift) & mask];
    }
  }
}

// Runs cover the rectangle in raster order and may wrap onto the next row (§7.4.4).
// Both painters keep a cursor (row, column) and fill each run row piece by row piece.

function drawPaletteRuns(words, stride, rect, part) {
  const colours = paletteOf(part, rect);
  const width = rect.width;
  let source = rect.data;
  let row = 0;
  let column = 0;
  let rowStart = rect.y * stride + rect.x;
  while (row < rect.height) {
    const byte = part[source++];
    const colour = colours[byte & 0x7f];
    let length = 1;
    if (byte & 0x80) {
      while (part[source] === 255) {
        length += 255;
        source++;
      }
      length += part[source++];
    }
    while (length > 0) {
      const span = Math.min(length, width - column);
      if (span === 1) {
        words[rowStart + column] = colour;
      } else {
        words.fill(colour, rowStart + column, rowStart + column + span);
      }
      length -= span;
      column += span;
      if (column === width) {
        column = 0;
        row += 1;
        rowStart += stride;
      }
    }
  }
}

function drawRuns(words, stride, rect, part) {
  const width = rect.width;
  let source = rect.data;
  let row = 0;
  let column = 0;
  let rowStart = rect.y * stride + rect.x;
  while (row < rect.height) {
    const colour = colourAt(part, source);
    source += 3;
    let length = 1;
    while (part[source] === 255) {
      length += 255;
      source++;
    }
    length += part[source++];
    while (length > 0) {
      const span = Math.min(length, width - column);
      words.fill(colour, rowStart + column, rowStart + column + span);
      length -= span;
      column += span;
      if (column === width) {
        column = 0;
        row += 1;
        rowStart += stride;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// The session's inflate stream (§7.1) on the browser's DecompressionStream

const WRITTEN = Symbol('written');
const NOTHING_QUEUED = Symbol('nothing queued');
// Input is written in slices so that a small body cannot make the stream produce a huge
// output before the limit is checked: deflate expands at most about 1,032 times, so a
// 16 KiB slice yields at most about 17 MiB.
const SLICE = 16 * 1024;

/**
 * One persistent RFC 1950 inflate stream. Each body's bytes end in a sync flush, so all
 * of its output comes out of the stream once the stream has consumed them: the output is
 * read while writing (a write waits for reads when output is pending), then whatever the
 * write left queued is drained. Exported for the viewer benchmark (benchmarks/browser),
 * which times it alone.
 */
export class Inflater {
  #writer;
  #reader;
  #pendingRead = null;
  #output = new Uint8Array(64 * 1024);
  #closed = false;

  constructor() {
    const stream = new DecompressionStream('deflate');
    this.#writer = stream.writable.getWriter();
    this.#reader = stream.readable.getReader();
    this.#writer.closed.catch(() => {});
    this.#reader.closed.catch(() => {});
  }

  /** Inflates the next bytes of the stream; returns their output (a view, valid until the next call). */
  async inflate(zlib, limit) {
    let length = 0;
    try {
      for (let offset = 0; offset < zlib.length; offset += SLICE) {
        const written = this.#writer.write(zlib.subarray(offset, offset + SLICE)).then(() => WRITTEN);
        written.catch(() => {});
        for (;;) {
          const result = await Promise.race([this.#read(), written]);
          if (result === WRITTEN) break;
          length = this.#take(result, length, limit);
        }
        // The stream has consumed the slice: its output is queued. A read of a
        // non-empty queue is already resolved, so it wins this race; a read of an
        // empty queue stays pending (and is kept for the next body).
        for (;;) {
          const result = await Promise.race([this.#read(), Promise.resolve(NOTHING_QUEUED)]);
          if (result === NOTHING_QUEUED) break;
          length = this.#take(result, length, limit);
        }
      }
    } catch (error) {
      if (error instanceof TileError) throw error;
      throw new TileError(TileErrorKind.corruptDeflate,
        `the zlib bytes are not a valid continuation of this session's stream: ${error.message}`,
        { cause: error });
    }
    return this.#output.subarray(0, length);
  }

  #read() {
    if (!this.#pendingRead) {
      this.#pendingRead = this.#reader.read();
      this.#pendingRead.catch(() => {});
    }
    return this.#pendingRead;
  }

  #take(result, length, limit) {
    this.#pendingRead = null;
    if (result.done) {
      throw new TileError(TileErrorKind.corruptDeflate, 'the zlib stream has ended, but updates continue it');
    }
    const chunk = result.value;
    const total = length + chunk.length;
    if (total > limit) {
      throw new TileError(TileErrorKind.inflateLimitExceeded,
        `the body inflates to more than this viewer's limit of ${limit} bytes`);
    }
    if (total > this.#output.length) {
      const grown = new Uint8Array(Math.min(limit, Math.max(total, this.#output.length * 2)));
      grown.set(this.#output.subarray(0, length));
      this.#output = grown;
    }
    this.#output.set(chunk, length);
    return total;
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.cancel().catch(() => {});
    this.#writer.abort().catch(() => {});
  }
}

/**
 * bgrx8888 bytes (§5.2.1: B, G, R, unused) as RGBA with alpha 255, e.g. for comparing a
 * host's frame with the decoder's framebuffer.
 */
export function bgrxToRGBA(bytes, width, height) {
  const count = width * height;
  if (bytes.length !== count * 4) {
    throw new RangeError(`${width}×${height} bgrx8888 pixels are ${count * 4} bytes, not ${bytes.length}`);
  }
  const rgba = new Uint8ClampedArray(count * 4);
  for (let index = 0; index < count * 4; index += 4) {
    rgba[index] = bytes[index + 2];
    rgba[index + 1] = bytes[index + 1];
    rgba[index + 2] = bytes[index];
    rgba[index + 3] = 255;
  }
  return rgba;
}
