// Xlib with MIT-SHM capture and XTest input injection, for the host's x11 source; DAMAGE
// (with XFixes regions) tells the capture which parts of the screen were drawn; XFixes
// selection events, for the clipboard (X11Clipboard).
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/keysym.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <X11/extensions/XShm.h>
#include <X11/extensions/XTest.h>
#include <X11/extensions/Xfixes.h>
#include <X11/extensions/Xdamage.h>

#include <stdint.h>
#include <string.h>

// Copies a 32-bit ZPixmap (8-bit red, green, blue; byte order LSBFirst = B,G,R,pad or
// MSBFirst = pad,R,G,B) into BGRX with the unused byte 0, `target_stride` bytes per target
// row (a whole frame, or a rectangle of a larger one). In C because the loop runs over
// every pixel captured, and unoptimised (debug) Swift is ~20x slower.
static inline void relay_copy_bgrx_rows(uint8_t *target, long target_stride, const uint8_t *source, int width,
                                        int height, long source_stride, int most_significant_first) {
    for (int row = 0; row < height; row++) {
        const uint8_t *from = source + (long)row * source_stride;
        uint8_t *to = target + (long)row * target_stride;
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
            // B,G,R,pad already: copy 32-bit pixels with the pad byte cleared (memcpy keeps
            // the loads and stores unaligned-safe; the compiler turns the loop into vector
            // instructions).
            for (int column = 0; column < width; column++) {
                uint32_t pixel;
                memcpy(&pixel, from + 4 * column, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                pixel &= 0x00FFFFFFu;  // the fourth byte in memory is the top one
#else
                pixel &= 0xFFFFFF00u;
#endif
                memcpy(to + 4 * column, &pixel, 4);
            }
        }
    }
}

// The same for a whole frame: tightly packed target rows.
static inline void relay_copy_bgrx(uint8_t *target, const uint8_t *source, int width, int height,
                                   int source_stride, int most_significant_first) {
    relay_copy_bgrx_rows(target, (long)width * 4, source, width, height, source_stride, most_significant_first);
}
