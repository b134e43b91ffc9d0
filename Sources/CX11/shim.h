// Xlib with MIT-SHM capture and XTest input injection, for the host's x11 source; XFixes
// selection events, for the clipboard (X11Clipboard).
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/keysym.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <X11/extensions/XShm.h>
#include <X11/extensions/XTest.h>
#include <X11/extensions/Xfixes.h>

#include <stdint.h>

// Copies a 32-bit ZPixmap (8-bit red, green, blue; byte order LSBFirst = B,G,R,pad or
// MSBFirst = pad,R,G,B) into tightly packed BGRX with the unused byte 0. In C because the
// loop runs over every pixel of every frame, and unoptimised (debug) Swift is ~20x slower.
static inline void relay_copy_bgrx(uint8_t *target, const uint8_t *source, int width, int height,
                                   int source_stride, int most_significant_first) {
    for (int row = 0; row < height; row++) {
        const uint8_t *from = source + (long)row * source_stride;
        uint8_t *to = target + (long)row * width * 4;
        if (most_significant_first) {
            for (int column = 0; column < width; column++) {
                to[0] = from[3];
                to[1] = from[2];
                to[2] = from[1];
                to[3] = 0;
                from += 4;
                to += 4;
            }
        } else {
            for (int column = 0; column < width; column++) {
                to[0] = from[0];
                to[1] = from[1];
                to[2] = from[2];
                to[3] = 0;
                from += 4;
                to += 4;
            }
        }
    }
}
