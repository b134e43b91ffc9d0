// Browser keys to X11 keysyms for the Key message (docs/PROTOCOL.md §5.2.5), as the host
// injects them (Sources/RelayScreen: XKeysymToKeycode, remapping keysyms that have no key).
// Printable characters follow Sources/RelayWire/Keysym.swift: Latin-1 is its own code
// point, other Unicode is 0x01000000 + code point (X11 keysymdef.h); C0 and C1 controls
// have no keysym, except newline/return, tab, backspace and escape, which are their keys.
//
// The page sends keysymForEvent(event) on keydown (down) and keyup (up) of the canvas's
// hidden textarea, and keysymsForText() for text the textarea received through `input`
// (IME, dead keys, characters with no keydown) as a press and release of each.

/** Keysyms of the named keys (X11 keysymdef.h). */
export const Keysym = Object.freeze({
  BackSpace: 0xff08,
  Tab: 0xff09,
  Clear: 0xff0b,
  Return: 0xff0d,
  Pause: 0xff13,
  Scroll_Lock: 0xff14,
  Escape: 0xff1b,
  Multi_key: 0xff20,
  Muhenkan: 0xff22,
  Henkan: 0xff23,
  Hiragana_Katakana: 0xff27,
  Eisu_toggle: 0xff30,
  Hangul: 0xff31,
  Hangul_Hanja: 0xff34,
  Home: 0xff50,
  Left: 0xff51,
  Up: 0xff52,
  Right: 0xff53,
  Down: 0xff54,
  Page_Up: 0xff55,
  Page_Down: 0xff56,
  End: 0xff57,
  Select: 0xff60,
  Print: 0xff61,
  Execute: 0xff62,
  Insert: 0xff63,
  Undo: 0xff65,
  Redo: 0xff66,
  Menu: 0xff67,
  Find: 0xff68,
  Cancel: 0xff69,
  Help: 0xff6a,
  Mode_switch: 0xff7e,
  Num_Lock: 0xff7f,
  KP_Enter: 0xff8d,
  KP_Home: 0xff95,
  KP_Left: 0xff96,
  KP_Up: 0xff97,
  KP_Right: 0xff98,
  KP_Down: 0xff99,
  KP_Page_Up: 0xff9a,
  KP_Page_Down: 0xff9b,
  KP_End: 0xff9c,
  KP_Begin: 0xff9d,
  KP_Insert: 0xff9e,
  KP_Delete: 0xff9f,
  KP_Equal: 0xffbd,
  KP_Multiply: 0xffaa,
  KP_Add: 0xffab,
  KP_Separator: 0xffac,
  KP_Subtract: 0xffad,
  KP_Decimal: 0xffae,
  KP_Divide: 0xffaf,
  KP_0: 0xffb0,
  F1: 0xffbe,
  F4: 0xffc1,
  Shift_L: 0xffe1,
  Shift_R: 0xffe2,
  Control_L: 0xffe3,
  Control_R: 0xffe4,
  Caps_Lock: 0xffe5,
  Meta_L: 0xffe7,
  Meta_R: 0xffe8,
  Alt_L: 0xffe9,
  Alt_R: 0xffea,
  Super_L: 0xffeb,
  Super_R: 0xffec,
  Hyper_L: 0xffed,
  Hyper_R: 0xffee,
  ISO_Level3_Shift: 0xfe03,
  Delete: 0xffff,
});

const K = Keysym;
const LEFT = 1;
const RIGHT = 2;
const NUMPAD = 3;

// Modifiers by KeyboardEvent.code: the physical key tells left from right.
const MODIFIER_CODES = Object.freeze({
  ShiftLeft: K.Shift_L,
  ShiftRight: K.Shift_R,
  ControlLeft: K.Control_L,
  ControlRight: K.Control_R,
  AltLeft: K.Alt_L,
  AltRight: K.Alt_R,
  MetaLeft: K.Super_L,
  MetaRight: K.Super_R,
  OSLeft: K.Super_L,
  OSRight: K.Super_R,
});

// Modifiers by KeyboardEvent.key when `code` does not say which: [left, right].
const MODIFIER_KEYS = Object.freeze({
  Shift: [K.Shift_L, K.Shift_R],
  Control: [K.Control_L, K.Control_R],
  Alt: [K.Alt_L, K.Alt_R],
  // The Windows key; X desktops (and Windows hosts behind X) call it Super.
  Meta: [K.Super_L, K.Super_R],
  OS: [K.Super_L, K.Super_R],
  Super: [K.Super_L, K.Super_R],
  Hyper: [K.Hyper_L, K.Hyper_R],
});

// Keypad keys by KeyboardEvent.key (location 3): with NumLock on the browser reports the
// digit or '.', with NumLock off the navigation key; Numpad5 without NumLock is 'Clear'.
const KEYPAD_KEYS = Object.freeze({
  0: K.KP_0,
  1: K.KP_0 + 1,
  2: K.KP_0 + 2,
  3: K.KP_0 + 3,
  4: K.KP_0 + 4,
  5: K.KP_0 + 5,
  6: K.KP_0 + 6,
  7: K.KP_0 + 7,
  8: K.KP_0 + 8,
  9: K.KP_0 + 9,
  '.': K.KP_Decimal,
  // Layouts whose keypad decimal key types a comma (German and others).
  ',': K.KP_Separator,
  '*': K.KP_Multiply,
  '+': K.KP_Add,
  '-': K.KP_Subtract,
  '/': K.KP_Divide,
  '=': K.KP_Equal,
  Enter: K.KP_Enter,
  Insert: K.KP_Insert,
  Delete: K.KP_Delete,
  End: K.KP_End,
  ArrowDown: K.KP_Down,
  PageDown: K.KP_Page_Down,
  ArrowLeft: K.KP_Left,
  Clear: K.KP_Begin,
  ArrowRight: K.KP_Right,
  Home: K.KP_Home,
  ArrowUp: K.KP_Up,
  PageUp: K.KP_Page_Up,
});

// Every other key with a name (KeyboardEvent.key), F-keys aside.
const NAMED_KEYS = Object.freeze({
  Escape: K.Escape,
  Esc: K.Escape,
  Tab: K.Tab,
  Enter: K.Return,
  Backspace: K.BackSpace,
  Delete: K.Delete,
  Del: K.Delete,
  Insert: K.Insert,
  Home: K.Home,
  End: K.End,
  PageUp: K.Page_Up,
  PageDown: K.Page_Down,
  ArrowLeft: K.Left,
  ArrowUp: K.Up,
  ArrowRight: K.Right,
  ArrowDown: K.Down,
  Left: K.Left,
  Up: K.Up,
  Right: K.Right,
  Down: K.Down,
  CapsLock: K.Caps_Lock,
  NumLock: K.Num_Lock,
  ScrollLock: K.Scroll_Lock,
  Scroll: K.Scroll_Lock,
  PrintScreen: K.Print,
  Pause: K.Pause,
  ContextMenu: K.Menu,
  Apps: K.Menu,
  Clear: K.Clear,
  Help: K.Help,
  Select: K.Select,
  Execute: K.Execute,
  Undo: K.Undo,
  Redo: K.Redo,
  Find: K.Find,
  Cancel: K.Cancel,
  Compose: K.Multi_key,
  AltGraph: K.ISO_Level3_Shift,
  ModeChange: K.Mode_switch,
  // Korean keyboards' Han/Yeong and Hanja keys (Lang1/Lang2 on some).
  HangulMode: K.Hangul,
  HanjaMode: K.Hangul_Hanja,
  Lang1: K.Hangul,
  Lang2: K.Hangul_Hanja,
  Convert: K.Henkan,
  NonConvert: K.Muhenkan,
  KanaMode: K.Hiragana_Katakana,
  Eisu: K.Eisu_toggle,
  // XF86 keysyms for media keys.
  AudioVolumeMute: 0x1008ff12,
  AudioVolumeDown: 0x1008ff11,
  AudioVolumeUp: 0x1008ff13,
  MediaPlayPause: 0x1008ff14,
  MediaStop: 0x1008ff15,
  MediaTrackPrevious: 0x1008ff16,
  MediaTrackNext: 0x1008ff17,
});

// Named keys by KeyboardEvent.code, for events whose `key` is 'Unidentified'.
const NAMED_CODES = Object.freeze({
  Lang1: K.Hangul,
  Lang2: K.Hangul_Hanja,
  PrintScreen: K.Print,
  ContextMenu: K.Menu,
  Pause: K.Pause,
  ScrollLock: K.Scroll_Lock,
  NumLock: K.Num_Lock,
  CapsLock: K.Caps_Lock,
});

/**
 * The keysym that types one Unicode code point: Latin-1 as itself, anything else as
 * 0x01000000 + code point; newline and carriage return are Return, tab Tab, backspace
 * BackSpace, escape Escape; other control characters have none (null).
 * @param {number} codePoint
 * @returns {number | null}
 */
export function keysymForCodePoint(codePoint) {
  switch (codePoint) {
    case 0x0a:
    case 0x0d:
      return K.Return;
    case 0x09:
      return K.Tab;
    case 0x08:
      return K.BackSpace;
    case 0x1b:
      return K.Escape;
  }
  if ((codePoint >= 0x20 && codePoint <= 0x7e) || (codePoint >= 0xa0 && codePoint <= 0xff)) return codePoint;
  if (codePoint < 0xa0) return null;
  // Lone surrogates are no characters; nothing is above U+10FFFF.
  if ((codePoint >= 0xd800 && codePoint <= 0xdfff) || codePoint > 0x10ffff) return null;
  return 0x01000000 + codePoint;
}

/**
 * The keysym for a KeyboardEvent (or anything with its `key`, `code` and `location`), or
 * null when the key has none to send (a dead key, an IME composition, 'Unidentified').
 * @param {{key: string, code?: string, location?: number}} event
 * @returns {number | null}
 */
export function keysymForEvent(event) {
  const key = typeof event?.key === 'string' ? event.key : '';
  const code = typeof event?.code === 'string' ? event.code : '';
  const location = event?.location ?? 0;

  if (Object.hasOwn(MODIFIER_CODES, code) && Object.hasOwn(MODIFIER_KEYS, key)) return MODIFIER_CODES[code];
  // AltRight is AltGraph on many layouts: the key, not the code, says which.
  if (Object.hasOwn(MODIFIER_KEYS, key)) return MODIFIER_KEYS[key][location === RIGHT ? 1 : 0];
  if ((location === NUMPAD || code.startsWith('Numpad')) && Object.hasOwn(KEYPAD_KEYS, key)) return KEYPAD_KEYS[key];

  const functionKey = /^F([1-9]|1[0-9]|2[0-4])$/.exec(key);
  if (functionKey) return K.F1 + Number(functionKey[1]) - 1;
  if (Object.hasOwn(NAMED_KEYS, key)) return NAMED_KEYS[key];

  // A printable character: `key` is exactly one code point.
  const codePoints = Array.from(key);
  if (codePoints.length === 1) {
    const codePoint = codePoints[0].codePointAt(0);
    // Controls typed with Ctrl (some browsers report them as the key) have no keysym here.
    return codePoint < 0x20 || (codePoint >= 0x7f && codePoint < 0xa0) ? null : keysymForCodePoint(codePoint);
  }
  if (key === 'Unidentified' && Object.hasOwn(NAMED_CODES, code)) return NAMED_CODES[code];
  return null;
}

/**
 * The keysyms that type `text` (from the IME textarea, or pasted as keystrokes), one per
 * code point; a line break (\n, \r or \r\n) is one Return; controls without a key are left
 * out.
 * @param {string} text
 * @returns {number[]}
 */
export function keysymsForText(text) {
  const keysyms = [];
  const codePoints = Array.from(String(text), (character) => character.codePointAt(0));
  for (let index = 0; index < codePoints.length; index++) {
    if (codePoints[index] === 0x0d && codePoints[index + 1] === 0x0a) continue;
    const keysym = keysymForCodePoint(codePoints[index]);
    if (keysym !== null) keysyms.push(keysym);
  }
  return keysyms;
}

/**
 * The keys held down, by physical key (`code`): a release sends the keysym its press sent,
 * even when a modifier changed `key` in between (Shift let go before keypad 1: its keyup
 * says 'End'), and releaseAll() lifts every held key when the page loses focus.
 */
export class HeldKeys {
  #held = new Map();

  /** On keydown: the keysym to send as pressed, or null. A repeat sends the held keysym again. */
  press(event) {
    const id = HeldKeys.#id(event);
    const held = this.#held.get(id);
    if (held !== undefined) return held;
    const keysym = keysymForEvent(event);
    if (keysym !== null) this.#held.set(id, keysym);
    return keysym;
  }

  /** On keyup: the keysym to send as released, or null when none was pressed for the key. */
  release(event) {
    const id = HeldKeys.#id(event);
    const held = this.#held.get(id);
    this.#held.delete(id);
    return held ?? null;
  }

  /** The keysyms still held, last pressed first, to send as released; none are held after. */
  releaseAll() {
    const keysyms = [...this.#held.values()].reverse();
    this.#held.clear();
    return keysyms;
  }

  static #id(event) {
    return event?.code ? `code:${event.code}` : `key:${event?.key}`;
  }
}

function chord(...keysyms) {
  const steps = keysyms.map((keysym) => Object.freeze({ keysym, down: true }));
  for (const keysym of keysyms.slice().reverse()) steps.push(Object.freeze({ keysym, down: false }));
  return Object.freeze(steps);
}

/**
 * Key combinations the engineer's own system would keep from the page, for a menu: each a
 * list of Key messages ({keysym, down}) to send in order; every key pressed is released.
 */
export const specialKeys = Object.freeze({
  'Ctrl+Alt+Del': chord(K.Control_L, K.Alt_L, K.Delete),
  'Alt+Tab': chord(K.Alt_L, K.Tab),
  'Super (Windows key)': chord(K.Super_L),
  'Ctrl+Esc': chord(K.Control_L, K.Escape),
  'Alt+F4': chord(K.Alt_L, K.F4),
  PrintScreen: chord(K.Print),
});
