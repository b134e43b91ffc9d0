// The engineer's mouse, wheel and keyboard on the viewer's canvas, as Pointer and Key
// messages (docs/PROTOCOL.md §5.2.4, §5.2.5), and text pasted into the screen as Clipboard
// (§5.2.6). No protocol here: `send` delivers, and `enabled()` says whether input may go
// out at all (the customer allowed it, the engineer did not choose view only).
//
// - Pointer: canvas pixels are host pixels whatever CSS does to the canvas (fit or 1:1,
//   scrolled): the position is scaled by the canvas's drawn box. Moves are coalesced to
//   one message per animation frame; presses and releases go out at once. A wheel notch
//   is a press and release of button 4 (up) or 5 (down).
// - Keyboard: a hidden textarea holds the focus. keydown/keyup become Key messages through
//   HeldKeys (a release sends what its press sent; every held key is released on blur).
//   Text that arrives without a key (an IME, Korean, characters a keyboard layout types
//   through dead keys, or text a test inserts) comes as `input` or `compositionend` and is
//   typed as a press and release per character.
// - Paste (Ctrl+V, Shift+Insert, or the browser's Paste): the text goes to the host's
//   clipboard first, then the V key, so the host application pastes the engineer's text.

import { HeldKeys, keysymsForText } from './keysyms.js';
import { PointerButton } from './wire.js';

// How long a paste shortcut's key waits for the browser's paste event.
const PASTE_WAIT_MILLISECONDS = 300;
// A wheel notch in CSS pixels (Chromium: 120 per notch of a mouse wheel); a line and a page.
const NOTCH_PIXELS = 120;
const LINE_PIXELS = 40;
const PAGE_PIXELS = 800;
const MAXIMUM_NOTCHES_PER_EVENT = 10;

/** The protocol's button bits (§5.2.4) for a PointerEvent's `buttons` (1 left, 2 right, 4 middle). */
export function protocolButtons(domButtons) {
  let buttons = 0;
  if (domButtons & 1) buttons |= PointerButton.left;
  if (domButtons & 4) buttons |= PointerButton.middle;
  if (domButtons & 2) buttons |= PointerButton.right;
  return buttons;
}

/**
 * The host pixel under a client position, for a canvas of `width`×`height` pixels drawn
 * in `box` (its getBoundingClientRect()): clamped to the screen, as a host clamps (§5.2.4).
 */
export function hostPixel(clientX, clientY, box, width, height) {
  if (!(box.width > 0 && box.height > 0 && width > 0 && height > 0)) return null;
  const x = Math.floor(((clientX - box.left) * width) / box.width);
  const y = Math.floor(((clientY - box.top) * height) / box.height);
  return { x: Math.min(Math.max(x, 0), width - 1), y: Math.min(Math.max(y, 0), height - 1) };
}

/** Wheel notches of accumulated scrolling: counts whole notches, keeps the rest. */
export class WheelNotches {
  #rest = 0;

  /** Notches for one WheelEvent's deltaY and deltaMode: negative up, positive down. */
  add(deltaY, deltaMode = 0) {
    const pixels = deltaY * (deltaMode === 1 ? LINE_PIXELS : deltaMode === 2 ? PAGE_PIXELS : 1);
    if (pixels === 0 || !Number.isFinite(pixels)) return 0;
    if (Math.sign(pixels) !== Math.sign(this.#rest)) this.#rest = 0;
    this.#rest += pixels;
    let notches = Math.trunc(this.#rest / NOTCH_PIXELS);
    if (notches === 0 && Math.abs(pixels) >= NOTCH_PIXELS / 2) {
      // One click of a wheel whose browser counts less than 120 per notch is still a notch.
      notches = Math.sign(pixels);
      this.#rest = 0;
    } else {
      this.#rest -= notches * NOTCH_PIXELS;
    }
    return Math.max(-MAXIMUM_NOTCHES_PER_EVENT, Math.min(MAXIMUM_NOTCHES_PER_EVENT, notches));
  }

  reset() {
    this.#rest = 0;
  }
}

function isPasteShortcut(event) {
  const key = event.key?.toLowerCase();
  if ((event.ctrlKey || event.metaKey) && !event.altKey && key === 'v') return true;
  return event.shiftKey && !event.ctrlKey && !event.altKey && event.key === 'Insert';
}

function isOtherEditable(target, keyboard) {
  if (!(target instanceof Element) || target === keyboard) return false;
  return target.closest('input, textarea, select, [contenteditable]:not([contenteditable="false"])') !== null;
}

/**
 * Input from the page to the host. `send` is `{pointer(x, y, buttons), keys(steps),
 * clipboard(text)}`; `enabled()` is checked for every event.
 */
export class ViewerInput {
  #canvas;
  #keyboard;
  #send;
  #enabled;
  #held = new HeldKeys();
  #wheel = new WheelNotches();
  #buttons = 0;
  #position = null;
  #sent = null; // the last Pointer sent: {x, y, buttons}
  #moveFrame = 0;
  #composing = false;
  #pendingPaste = null;
  #listeners = [];

  constructor({ canvas, keyboard, send, enabled }) {
    this.#canvas = canvas;
    this.#keyboard = keyboard;
    this.#send = send;
    this.#enabled = enabled;
  }

  attach() {
    const canvas = this.#canvas;
    const keyboard = this.#keyboard;
    this.#listen(canvas, 'pointerdown', (event) => this.#pointerDown(event));
    this.#listen(canvas, 'pointermove', (event) => this.#pointerMove(event));
    this.#listen(canvas, 'pointerup', (event) => this.#pointerUp(event));
    this.#listen(canvas, 'pointercancel', () => this.#releaseButtons());
    this.#listen(canvas, 'lostpointercapture', () => this.#releaseButtons());
    // The canvas takes no focus: the keyboard textarea keeps it when the screen is clicked.
    this.#listen(canvas, 'mousedown', (event) => event.preventDefault());
    this.#listen(canvas, 'auxclick', (event) => event.preventDefault());
    this.#listen(canvas, 'contextmenu', (event) => event.preventDefault());
    this.#listen(canvas, 'wheel', (event) => this.#wheelTurned(event), { passive: false });
    this.#listen(keyboard, 'keydown', (event) => this.#keyDown(event));
    this.#listen(keyboard, 'keyup', (event) => this.#keyUp(event));
    this.#listen(keyboard, 'input', (event) => this.#input(event));
    this.#listen(keyboard, 'compositionstart', () => {
      this.#composing = true;
    });
    this.#listen(keyboard, 'compositionend', (event) => this.#compositionEnd(event));
    this.#listen(keyboard, 'blur', () => this.releaseAll());
    this.#listen(document, 'paste', (event) => this.#paste(event));
    this.#listen(window, 'blur', () => this.releaseAll());
    this.#listen(document, 'visibilitychange', () => {
      if (document.hidden) this.releaseAll();
    });
  }

  detach() {
    for (const [target, type, handler, options] of this.#listeners) target.removeEventListener(type, handler, options);
    this.#listeners = [];
    this.#cancelMove();
    this.#cancelPaste();
  }

  /** Puts the keyboard focus on the screen. */
  focus() {
    this.#keyboard.focus({ preventScroll: true });
  }

  /** Lets go of every key and button the host still holds from this page. */
  releaseAll() {
    // A paste key that never went down is not released either.
    const unsent = this.#pendingPaste?.keysym;
    this.#cancelPaste();
    const released = this.#held.releaseAll().filter((keysym) => keysym !== unsent);
    if (released.length > 0 && this.#enabled()) {
      this.#send.keys(released.map((keysym) => ({ keysym, down: false })));
    }
    this.#releaseButtons();
    this.#wheel.reset();
  }

  /** Types `text` on the host: a press and release per character (keysyms.js). */
  type(text) {
    const steps = [];
    for (const keysym of keysymsForText(text)) steps.push({ keysym, down: true }, { keysym, down: false });
    if (steps.length > 0 && this.#enabled()) this.#send.keys(steps);
  }

  #listen(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    this.#listeners.push([target, type, handler, options]);
  }

  // MARK: - Pointer

  #locate(event) {
    const canvas = this.#canvas;
    return hostPixel(event.clientX, event.clientY, canvas.getBoundingClientRect(), canvas.width, canvas.height);
  }

  #pointerDown(event) {
    event.preventDefault();
    this.focus();
    if (!this.#enabled()) return;
    try {
      this.#canvas.setPointerCapture(event.pointerId);
    } catch {
      // A pointer that is already gone cannot be captured; its events still arrive.
    }
    this.#track(event);
    this.#flushPointer();
  }

  #pointerMove(event) {
    if (!this.#enabled()) return;
    const before = this.#buttons;
    this.#track(event);
    // Chorded buttons change during a move; a change goes out at once, a move waits.
    if (this.#buttons !== before) {
      this.#flushPointer();
    } else if (this.#moveFrame === 0) {
      this.#moveFrame = requestAnimationFrame(() => {
        this.#moveFrame = 0;
        this.#flushPointer();
      });
    }
  }

  #pointerUp(event) {
    if (!this.#enabled()) return;
    this.#track(event);
    this.#flushPointer();
  }

  #track(event) {
    const position = this.#locate(event);
    if (position) this.#position = position;
    this.#buttons = protocolButtons(event.buttons);
  }

  #flushPointer() {
    this.#cancelMove();
    const position = this.#position;
    if (!position || !this.#enabled()) return;
    const sent = this.#sent;
    if (sent && sent.x === position.x && sent.y === position.y && sent.buttons === this.#buttons) return;
    this.#sent = { x: position.x, y: position.y, buttons: this.#buttons };
    this.#send.pointer(position.x, position.y, this.#buttons);
  }

  #cancelMove() {
    if (this.#moveFrame !== 0) cancelAnimationFrame(this.#moveFrame);
    this.#moveFrame = 0;
  }

  #releaseButtons() {
    if (this.#buttons === 0) return;
    this.#buttons = 0;
    this.#flushPointer();
  }

  #wheelTurned(event) {
    event.preventDefault();
    if (!this.#enabled()) return;
    const notches = this.#wheel.add(event.deltaY, event.deltaMode);
    if (notches === 0) return;
    this.#track(event);
    this.#flushPointer();
    const position = this.#position;
    if (!position) return;
    const bit = notches < 0 ? PointerButton.wheelUp : PointerButton.wheelDown;
    for (let count = 0; count < Math.abs(notches); count++) {
      this.#send.pointer(position.x, position.y, this.#buttons | bit);
      this.#send.pointer(position.x, position.y, this.#buttons);
    }
    this.#sent = { x: position.x, y: position.y, buttons: this.#buttons };
  }

  // MARK: - Keyboard

  #keyDown(event) {
    if (!this.#enabled()) return;
    // An IME at work: its text arrives at compositionend.
    if (event.isComposing || event.keyCode === 229) return;
    if (isPasteShortcut(event)) {
      this.#pasteShortcut(event);
      return;
    }
    const keysym = this.#held.press(event);
    // No keysym (a dead key, 'Unidentified'): the text, if any, arrives as input.
    if (keysym === null) return;
    // Tab, F5, Backspace and the rest belong to the host, not to this page.
    event.preventDefault();
    this.#send.keys([{ keysym, down: true }]);
  }

  #keyUp(event) {
    const keysym = this.#held.release(event);
    if (keysym === null) return;
    event.preventDefault();
    if (this.#pendingPaste?.keysym === keysym) this.#flushPaste();
    if (this.#enabled()) this.#send.keys([{ keysym, down: false }]);
  }

  #input(event) {
    const keyboard = this.#keyboard;
    const type = event.inputType ?? '';
    if (this.#composing || event.isComposing || type === 'insertCompositionText') return;
    if (this.#enabled()) {
      if (type.startsWith('insert') && type !== 'insertFromPaste' && type !== 'insertFromDrop') {
        this.type(type === 'insertLineBreak' || type === 'insertParagraph' ? '\n' : event.data ?? keyboard.value);
      } else if (type === 'deleteContentBackward') {
        // A virtual keyboard's backspace, which sent no key.
        this.#send.keys([{ keysym: 0xff08, down: true }, { keysym: 0xff08, down: false }]);
      }
    }
    keyboard.value = '';
  }

  #compositionEnd(event) {
    this.#composing = false;
    if (this.#enabled() && event.data) this.type(event.data);
    this.#keyboard.value = '';
  }

  // MARK: - Paste

  // The V key waits for the paste event: the text must reach the host's clipboard before
  // the key that pastes it. The keydown is not prevented, or the browser fires no paste.
  #pasteShortcut(event) {
    if (this.#pendingPaste || event.repeat) {
      event.preventDefault();
      return;
    }
    const keysym = this.#held.press(event);
    if (keysym === null) return;
    const timer = setTimeout(() => this.#flushPaste(), PASTE_WAIT_MILLISECONDS);
    this.#pendingPaste = { keysym, timer };
  }

  #paste(event) {
    if (!this.#enabled() || isOtherEditable(event.target, this.#keyboard)) return;
    event.preventDefault();
    const text = event.clipboardData?.getData('text/plain') ?? '';
    if (text !== '') this.#send.clipboard(text);
    this.#flushPaste();
  }

  #flushPaste() {
    const pending = this.#pendingPaste;
    if (!pending) return;
    this.#cancelPaste();
    if (this.#enabled()) this.#send.keys([{ keysym: pending.keysym, down: true }]);
  }

  #cancelPaste() {
    if (this.#pendingPaste) clearTimeout(this.#pendingPaste.timer);
    this.#pendingPaste = null;
  }
}
