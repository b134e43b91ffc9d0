#!/usr/bin/env python3
"""A window that fills an X screen with one colour and changes it on every press of button 1.

The target of bench_viewer.py's click-to-pixels measurement: the host shares this display,
the browser clicks, and the pixels under the click change as soon as the X server has
delivered the press and drawn the new background (one XClearWindow, no toolkit).

    python3 click_target.py :120          # prints "ready" once the window is mapped

Only libX11 through ctypes (Debian: libx11-6), so nothing beyond python3 is needed.
"""

import ctypes
import ctypes.util
import sys

BUTTON_PRESS = 4
MAP_NOTIFY = 19
BUTTON_PRESS_MASK = 1 << 2
STRUCTURE_NOTIFY_MASK = 1 << 17
# The two colours, 0xRRGGBB (a TrueColor visual takes them as pixel values).
COLOURS = (0x1F4E79, 0xF2C14E)


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) == 2 else 2
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        x = ctypes.CDLL(name)
    except OSError as error:
        print(f"click_target: cannot load libX11 ({error}); install it: apt-get install libx11-6", file=sys.stderr)
        return 1
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x.XDefaultScreen.argtypes = [ctypes.c_void_p]
    x.XRootWindow.restype = ctypes.c_ulong
    x.XRootWindow.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x.XDisplayWidth.argtypes = x.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x.XCreateSimpleWindow.restype = ctypes.c_ulong
    x.XCreateSimpleWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong] + [ctypes.c_int] * 2 + [ctypes.c_uint] * 3 + [ctypes.c_ulong] * 2
    x.XSelectInput.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_long]
    x.XMapWindow.argtypes = x.XClearWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x.XSetWindowBackground.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    x.XNextEvent.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    x.XFlush.argtypes = [ctypes.c_void_p]

    display = x.XOpenDisplay(sys.argv[1].encode())
    if not display:
        print(f"click_target: cannot open the X display {sys.argv[1]}; is the X server running?", file=sys.stderr)
        return 1
    screen = x.XDefaultScreen(display)
    width, height = x.XDisplayWidth(display, screen), x.XDisplayHeight(display, screen)
    window = x.XCreateSimpleWindow(display, x.XRootWindow(display, screen), 0, 0, width, height, 0, 0, COLOURS[0])
    x.XSelectInput(display, window, BUTTON_PRESS_MASK | STRUCTURE_NOTIFY_MASK)
    x.XMapWindow(display, window)
    x.XFlush(display)
    event = ctypes.create_string_buffer(192)  # sizeof(XEvent) is 192 on LP64
    presses = 0
    while True:
        x.XNextEvent(display, event)
        kind = int.from_bytes(event.raw[0:4], "little")
        if kind == MAP_NOTIFY:
            print("ready", flush=True)
        elif kind == BUTTON_PRESS:
            # XButtonEvent.button: after type, serial, send_event, display, window, root,
            # subwindow, time, x, y, x_root, y_root, state (offset 84 on LP64).
            button = int.from_bytes(event.raw[84:88], "little")
            if button != 1:
                continue
            presses += 1
            x.XSetWindowBackground(display, window, COLOURS[presses % 2])
            x.XClearWindow(display, window)
            x.XFlush(display)


if __name__ == "__main__":
    sys.exit(main())
