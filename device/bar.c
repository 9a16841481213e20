#include "bar.h"

#include <string.h>
#include <unistd.h>

#include "util.h"

void ota_bar_init(ota_bar_t *bar, FILE *out)
{
    memset(bar, 0, sizeof *bar);
    bar->out = out;
    bar->enabled = isatty(fileno(out)) == 1;
}

static void human(uint64_t n, char *out, size_t cap)
{
    if (n < 1024)
        snprintf(out, cap, "%u B", (unsigned)n);
    else if (n < 1024 * 1024)
        snprintf(out, cap, "%.1f KiB", (double)n / 1024);
    else if (n < UINT64_C(1024) * 1024 * 1024)
        snprintf(out, cap, "%.1f MiB", (double)n / (1024 * 1024));
    else
        snprintf(out, cap, "%.1f GiB", (double)n / (1024.0 * 1024 * 1024));
}

void ota_bar_format(uint64_t bytes, uint64_t total, int width, char *out, size_t cap)
{
    char fill[128], a[32], b[32];
    if (width < 1)
        width = 1;
    if (width > (int)sizeof fill - 1)
        width = (int)sizeof fill - 1;
    if (bytes > total)
        bytes = total;
    int done = total > 0 ? (int)((double)bytes / (double)total * width) : width;
    int pct = total > 0 ? (int)((double)bytes / (double)total * 100) : 100;
    for (int i = 0; i < width; i++)
        fill[i] = i < done ? '#' : '-';
    fill[width] = '\0';
    human(bytes, a, sizeof a);
    human(total, b, sizeof b);
    snprintf(out, cap, "[%s] %3d%%  %s / %s", fill, pct, a, b);
}

void ota_bar_update(ota_bar_t *bar, uint64_t bytes, uint64_t total)
{
    char line[256];
    int64_t now = ota__now_ms();
    if (!bar->enabled || (bar->drawn && now - bar->last_ms < 100 && bytes < total))
        return;
    ota_bar_format(bytes, total, 30, line, sizeof line);
    fprintf(bar->out, "\r%s\033[K", line);
    fflush(bar->out);
    bar->drawn = true;
    bar->last_ms = now;
}

void ota_bar_clear(ota_bar_t *bar)
{
    if (!bar->enabled || !bar->drawn)
        return;
    fputs("\r\033[K", bar->out);
    fflush(bar->out);
    bar->drawn = false;
}
