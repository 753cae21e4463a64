// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A scatter plot of run time against PLE exits, one colour per series, as
 * an 8-bit palette PNG: axes, ticks, a 3x5 pixel font, a legend. The
 * deflate stream comes from GIO's GZlibCompressor (no other dependency).
 */
#include "plesim.h"

#include <gio/gio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { W = 720, H = 480, L = 70, R = 20, T = 40, B = 50 };
enum { C_BG, C_FG, C_GRID, C_SERIES };

typedef struct {
	uint8_t px[H][W];
	uint32_t pal[C_SERIES + 8];
	int ncol;
} Img;

/* 3x5 glyphs, rows top to bottom, bit 4 = left column */
static const char font_chars[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-.(),=/:%";
static const uint8_t font[][5] = {
	{ 7, 5, 5, 5, 7 }, { 2, 6, 2, 2, 7 }, { 7, 1, 7, 4, 7 },
	{ 7, 1, 3, 1, 7 }, { 5, 5, 7, 1, 1 }, { 7, 4, 7, 1, 7 },
	{ 7, 4, 7, 5, 7 }, { 7, 1, 1, 2, 2 }, { 7, 5, 7, 5, 7 },
	{ 7, 5, 7, 1, 7 }, { 2, 5, 7, 5, 5 }, { 6, 5, 6, 5, 6 },
	{ 3, 4, 4, 4, 3 }, { 6, 5, 5, 5, 6 }, { 7, 4, 6, 4, 7 },
	{ 7, 4, 6, 4, 4 }, { 3, 4, 5, 5, 3 }, { 5, 5, 7, 5, 5 },
	{ 7, 2, 2, 2, 7 }, { 1, 1, 1, 5, 2 }, { 5, 5, 6, 5, 5 },
	{ 4, 4, 4, 4, 7 }, { 5, 7, 7, 5, 5 }, { 6, 5, 5, 5, 5 },
	{ 2, 5, 5, 5, 2 }, { 6, 5, 6, 4, 4 }, { 2, 5, 5, 6, 3 },
	{ 6, 5, 6, 5, 5 }, { 3, 4, 2, 1, 6 }, { 7, 2, 2, 2, 2 },
	{ 5, 5, 5, 5, 7 }, { 5, 5, 5, 5, 2 }, { 5, 5, 7, 7, 5 },
	{ 5, 5, 2, 5, 5 }, { 5, 5, 2, 2, 2 }, { 7, 1, 2, 4, 7 },
	{ 0, 0, 7, 0, 0 }, { 0, 0, 0, 0, 2 }, { 1, 2, 2, 2, 1 },
	{ 4, 2, 2, 2, 4 }, { 0, 0, 0, 2, 4 }, { 0, 7, 0, 7, 0 },
	{ 1, 1, 2, 4, 4 }, { 0, 2, 0, 2, 0 }, { 5, 1, 2, 4, 5 },
};

static void put(Img *im, int x, int y, int c)
{
	if (x >= 0 && x < W && y >= 0 && y < H)
		im->px[y][x] = (uint8_t)c;
}

static void box(Img *im, int x0, int y0, int x1, int y1, int c)
{
	for (int y = y0; y <= y1; y++)
		for (int x = x0; x <= x1; x++)
			put(im, x, y, c);
}

static void glyph(Img *im, int x, int y, char ch, int c)
{
	const char *p = strchr(font_chars, g_ascii_toupper(ch));

	if (!p || !ch)
		return;
	for (int r = 0; r < 5; r++)
		for (int k = 0; k < 3; k++)
			if (font[p - font_chars][r] & (4 >> k))
				box(im, x + 2 * k, y + 2 * r, x + 2 * k + 1,
				    y + 2 * r + 1, c);
}

/* Text at (x, y), 8 px per character; returns its width. */
static int text(Img *im, int x, int y, const char *s, int c)
{
	int n = 0;

	for (; s[n]; n++)
		glyph(im, x + 8 * n, y, s[n], c);
	return 8 * n;
}

/* A round step giving about 5 ticks over @span. */
static double nice_step(double span)
{
	double e = pow(10, floor(log10(span / 5))), f = span / 5 / e;

	return e * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

typedef struct {
	double x0, x1, y0, y1;
} Range;

static void axes(Img *im, const Range *r)
{
	double sx = nice_step(r->x1 - r->x0), sy = nice_step(r->y1 - r->y0);
	char buf[32];

	for (double v = ceil(r->x0 / sx) * sx; v <= r->x1; v += sx) {
		int x = L + (int)((v - r->x0) / (r->x1 - r->x0) * (W - L - R));

		box(im, x, T, x, H - B, C_GRID);
		snprintf(buf, sizeof(buf), "%.0f", v);
		text(im, x - 4 * (int)strlen(buf), H - B + 6, buf, C_FG);
	}
	for (double v = ceil(r->y0 / sy) * sy; v <= r->y1; v += sy) {
		int y = H - B -
			(int)((v - r->y0) / (r->y1 - r->y0) * (H - T - B));

		box(im, L, y, W - R, y, C_GRID);
		snprintf(buf, sizeof(buf), "%.0f", v);
		text(im, L - 6 - 8 * (int)strlen(buf), y - 5, buf, C_FG);
	}
	box(im, L, T, L, H - B, C_FG);
	box(im, L, H - B, W - R, H - B, C_FG);
	text(im, W / 2 - 40, H - 20, "PLE EXITS", C_FG);
	text(im, 4, T - 22, "RUN TIME (MS)", C_FG);
}

static void range(const PsParams *p, const PsSeries *s, uint32_t n, Range *r)
{
	r->x0 = 0;
	r->x1 = 1;
	r->y0 = 1e300;
	r->y1 = 0;
	for (uint32_t k = 0; k < n; k++)
		for (uint32_t i = 0; i < s[k].n; i++) {
			double y = ps_ms(p, s[k].r[i].runtime);

			r->x1 = fmax(r->x1, (double)s[k].r[i].ple_exits);
			r->y0 = fmin(r->y0, y);
			r->y1 = fmax(r->y1, y);
		}
	r->x1 *= 1.05;
	r->y0 = floor(r->y0 * 0.98);
	r->y1 = ceil(r->y1 * 1.02) + 1;
}

static void scatter(Img *im, const PsParams *p, const PsSeries *s, int c,
		    const Range *r)
{
	for (uint32_t i = 0; i < s->n; i++) {
		double x = (double)s->r[i].ple_exits,
		       y = ps_ms(p, s->r[i].runtime);
		int px = L + (int)((x - r->x0) / (r->x1 - r->x0) * (W - L - R));
		int py = H - B -
			 (int)((y - r->y0) / (r->y1 - r->y0) * (H - T - B));

		box(im, px - 1, py - 1, px + 1, py + 1, c);
	}
}

static void draw(Img *im, const PsParams *p, const PsSeries *s, uint32_t n)
{
	Range r;
	char title[120];

	memset(im->px, C_BG, sizeof(im->px));
	im->pal[C_BG] = 0xffffff;
	im->pal[C_FG] = 0x000000;
	im->pal[C_GRID] = 0xe0e0e0;
	range(p, s, n, &r);
	axes(im, &r);
	for (uint32_t k = 0; k < n && k < 8; k++) {
		im->pal[C_SERIES + k] = s[k].rgb;
		scatter(im, p, &s[k], C_SERIES + (int)k, &r);
		box(im, W - R - 130, T + 6 + 14 * (int)k, W - R - 122,
		    T + 14 + 14 * (int)k, C_SERIES + (int)k);
		text(im, W - R - 116, T + 5 + 14 * (int)k,
		     s[k].label ? s[k].label : "", C_FG);
	}
	im->ncol = C_SERIES + (int)(n < 8 ? n : 8);
	snprintf(title, sizeof(title), "%u PCPUS, %u X %u VCPUS, %s, %u RUNS",
		 p->pcpus, p->vms, p->vcpus, ps_lock_name(p->lock),
		 n ? s[0].n : 0);
	text(im, L + 120, 8, title, C_FG);
}

/* ---- PNG ------------------------------------------------------------------ */

static uint32_t crc_update(uint32_t c, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		c ^= d[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320U & (0U - (c & 1)));
	}
	return c;
}

static uint32_t png_crc(const char *type, const uint8_t *d, uint32_t len)
{
	uint32_t c = crc_update(0xffffffffU, (const uint8_t *)type, 4);

	return crc_update(c, d, len) ^ 0xffffffffU;
}

static void chunk(GByteArray *out, const char *type, const uint8_t *d,
		  uint32_t len)
{
	uint8_t be[4] = { len >> 24, len >> 16, len >> 8, len };
	uint32_t crc = png_crc(type, d, len);

	g_byte_array_append(out, be, 4);
	g_byte_array_append(out, (const uint8_t *)type, 4);
	g_byte_array_append(out, d, len);
	be[0] = crc >> 24;
	be[1] = crc >> 16;
	be[2] = crc >> 8;
	be[3] = crc;
	g_byte_array_append(out, be, 4);
}

/* The zlib stream of @raw (what IDAT holds). */
static GBytes *deflate(const uint8_t *raw, gsize n, GError **error)
{
	g_autoptr(GConverter) z = G_CONVERTER(
		g_zlib_compressor_new(G_ZLIB_COMPRESSOR_FORMAT_ZLIB, 9));
	GByteArray *out = g_byte_array_new();
	uint8_t buf[65536];
	gsize off = 0, rd, wr;
	GConverterResult res;

	do {
		res = g_converter_convert(z, raw + off, n - off, buf,
					  sizeof(buf), G_CONVERTER_INPUT_AT_END,
					  &rd, &wr, error);
		if (res == G_CONVERTER_ERROR) {
			g_byte_array_unref(out);
			return NULL;
		}
		off += rd;
		g_byte_array_append(out, buf, (guint)wr);
	} while (res != G_CONVERTER_FINISHED);
	return g_byte_array_free_to_bytes(out);
}

static GBytes *encode(const Img *im, GError **error)
{
	static const uint8_t sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
	uint8_t ihdr[13] = { 0,	      0, W >> 8, W & 255, 0, 0, H >> 8,
			     H & 255, 8, 3,	 0,	  0, 0 };
	g_autofree uint8_t *raw = g_malloc((gsize)H * (W + 1));
	uint8_t pal[3 * (C_SERIES + 8)];
	g_autoptr(GBytes) z = NULL;
	GByteArray *out = g_byte_array_new();

	for (int y = 0; y < H; y++) {
		raw[(gsize)y * (W + 1)] = 0; /* filter: none */
		memcpy(raw + (gsize)y * (W + 1) + 1, im->px[y], W);
	}
	for (int c = 0; c < im->ncol; c++) {
		pal[3 * c] = im->pal[c] >> 16;
		pal[3 * c + 1] = im->pal[c] >> 8;
		pal[3 * c + 2] = im->pal[c];
	}
	if (!(z = deflate(raw, (gsize)H * (W + 1), error))) {
		g_byte_array_unref(out);
		return NULL;
	}
	g_byte_array_append(out, sig, 8);
	chunk(out, "IHDR", ihdr, 13);
	chunk(out, "PLTE", pal, 3 * (uint32_t)im->ncol);
	chunk(out, "IDAT", g_bytes_get_data(z, NULL),
	      (uint32_t)g_bytes_get_size(z));
	chunk(out, "IEND", NULL, 0);
	return g_byte_array_free_to_bytes(out);
}

bool ps_plot_png(const char *path, const PsParams *p, const PsSeries *s,
		 uint32_t n_series, char *err, size_t errlen)
{
	g_autofree Img *im = g_new0(Img, 1);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) png = NULL;

	draw(im, p, s, n_series);
	png = encode(im, &error);
	if (png && g_file_set_contents(path, g_bytes_get_data(png, NULL),
				       (gssize)g_bytes_get_size(png), &error))
		return true;
	snprintf(err, errlen, "%s: %s", path, error->message);
	return false;
}
