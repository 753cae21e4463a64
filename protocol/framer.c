// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Stream framing: split a byte stream into JSON objects.
 *
 * The framer only matches braces; JSON syntax and UTF-8 are checked by the
 * parser on the complete frame. It never holds more than max_frame bytes.
 */
#include "vshare-proto.h"

typedef enum {
	FRAMER_IDLE,	/* between objects */
	FRAMER_OBJECT,	/* inside an object */
	FRAMER_DISCARD, /* after an error, until '\n' or 0xFF */
} FramerState;

struct VsFramer {
	GByteArray *buf;
	gsize max_frame;
	FramerState state;
	guint depth;
	gboolean in_string;
	gboolean escape;
	VsFrameFunc func;
	gpointer user_data;
};

VsFramer *vs_framer_new(gsize max_frame, VsFrameFunc func, gpointer user_data)
{
	VsFramer *f = g_new0(VsFramer, 1);

	f->buf = g_byte_array_new();
	f->max_frame = max_frame;
	f->func = func;
	f->user_data = user_data;
	return f;
}

void vs_framer_free(VsFramer *f)
{
	if (!f)
		return;
	g_byte_array_unref(f->buf);
	g_free(f);
}

void vs_framer_reset(VsFramer *f)
{
	g_byte_array_set_size(f->buf, 0);
	f->state = FRAMER_IDLE;
	f->depth = 0;
	f->in_string = FALSE;
	f->escape = FALSE;
}

static void framer_fail(VsFramer *f, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void framer_fail(VsFramer *f, const char *fmt, ...)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	error = g_error_new_literal(VS_ERROR, VS_ERROR_GENERIC, msg);
	vs_framer_reset(f);
	f->state = FRAMER_DISCARD;
	f->func(NULL, 0, error, f->user_data);
}

static void framer_object_byte(VsFramer *f, guint8 c)
{
	g_byte_array_append(f->buf, &c, 1);
	if (f->buf->len > f->max_frame) {
		framer_fail(f, "JSON frame exceeds %" G_GSIZE_FORMAT " bytes",
			    f->max_frame);
		return;
	}
	if (f->in_string) {
		if (f->escape)
			f->escape = FALSE;
		else if (c == '\\')
			f->escape = TRUE;
		else if (c == '"')
			f->in_string = FALSE;
		return;
	}
	switch (c) {
	case '"':
		f->in_string = TRUE;
		break;
	case '{':
	case '[':
		if (++f->depth > VS_MAX_DEPTH)
			framer_fail(f, "JSON nesting deeper than %d levels",
				    VS_MAX_DEPTH);
		break;
	case '}':
	case ']':
		if (--f->depth == 0) {
			f->func((const char *)f->buf->data, f->buf->len, NULL,
				f->user_data);
			vs_framer_reset(f);
		}
		break;
	default:
		break;
	}
}

void vs_framer_feed(VsFramer *f, const guint8 *data, gsize len)
{
	for (gsize i = 0; i < len; i++) {
		guint8 c = data[i];

		if (c == VS_SENTINEL) {
			vs_framer_reset(f);
			continue;
		}
		switch (f->state) {
		case FRAMER_DISCARD:
			if (c == '\n')
				f->state = FRAMER_IDLE;
			break;
		case FRAMER_IDLE:
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
				break;
			if (c != '{') {
				framer_fail(f, "JSON parse error: expected an "
					       "object");
				break;
			}
			f->state = FRAMER_OBJECT;
			framer_object_byte(f, c);
			break;
		case FRAMER_OBJECT:
			framer_object_byte(f, c);
			break;
		}
	}
}
