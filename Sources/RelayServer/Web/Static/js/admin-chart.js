// The usage charts: hours (bars, left scale) and sessions (a line, right scale) per day,
// drawn as SVG at the container's own width, and a bar per engineer. Every colour is a
// class of admin.css; sizes are SVG attributes (the page's CSP allows no style attribute).
// A <title> per day is the tooltip; the page also offers the same numbers as a table.

import { dayLabels, dayWords, durationLabel, formatNumber, niceScale, plural } from './admin-format.js';
import { svg } from './admin-ui.js';

const MARGIN = { top: 14, right: 46, bottom: 30, left: 50 };

/** The words of one tick of the hours scale: "0", "0.5 h", "12 h". */
export function hourTick(hours, locale = undefined) {
  if (hours === 0) return '0';
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 2 }).format(hours)} h`;
}

/** The tooltip of a day: "Tue, 3 Nov 2026: 12 sessions, 4 h 10 min". */
export function dayTooltip(day, locale = undefined) {
  return `${dayWords(day.day, locale)}: ${plural(day.sessions, 'session', 'sessions', locale)}, ${durationLabel(day.seconds)}`;
}

/** One sentence about the days for screen readers and for everyone under the chart. */
export function chartSummary(days, locale = undefined) {
  if (days.length === 0) return 'No days in this range.';
  const active = days.filter((day) => day.sessions > 0 || day.seconds > 0);
  if (active.length === 0) return `No sessions on any of the ${plural(days.length, 'day', 'days', locale)}.`;
  const busiest = active.reduce((best, day) => (day.seconds > best.seconds || (day.seconds === best.seconds && day.sessions > best.sessions) ? day : best));
  return (
    `Sessions on ${formatNumber(active.length, locale)} of ${plural(days.length, 'day', 'days', locale)}. ` +
    `The busiest day was ${dayWords(busiest.day, locale)} with ${durationLabel(busiest.seconds)} in ${plural(busiest.sessions, 'session', 'sessions', locale)}.`
  );
}

/**
 * Draws the per-day chart into `container` (an element with a width), replacing what was
 * there. `days`: [{day, sessions, seconds}]. `labelledBy`: the id of the sentence that
 * describes it.
 */
export function drawDayChart(container, days, { labelledBy, locale } = {}) {
  const width = Math.max(280, Math.floor(container.clientWidth || 640));
  const height = width < 520 ? 200 : 260;
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;

  const maxHours = Math.max(0, ...days.map((day) => day.seconds / 3600));
  const maxSessions = Math.max(0, ...days.map((day) => day.sessions));
  const hours = niceScale(maxHours, { intervals: plotHeight < 160 ? 3 : 4 });
  const sessions = niceScale(maxSessions, { count: hours.ticks.length - 1, integer: true });
  const yHours = (value) => MARGIN.top + plotHeight - (value / hours.max) * plotHeight;
  const ySessions = (value) => MARGIN.top + plotHeight - (value / sessions.max) * plotHeight;

  const chart = svg('svg', {
    class: 'day-chart',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-labelledby': labelledBy ?? '',
  });

  // Grid lines and both scales' labels (they share the lines: the session scale has as
  // many steps as the hours scale).
  const grid = svg('g', { class: 'grid' });
  hours.ticks.forEach((tick, index) => {
    const y = round(yHours(tick));
    grid.append(svg('line', { x1: MARGIN.left, x2: MARGIN.left + plotWidth, y1: y, y2: y, class: index === 0 ? 'axis-line' : 'grid-line' }));
    const left = svg('text', { x: MARGIN.left - 6, y: y + 4, class: 'tick hours-tick', 'text-anchor': 'end' });
    left.textContent = hourTick(tick, locale);
    const right = svg('text', { x: MARGIN.left + plotWidth + 6, y: y + 4, class: 'tick sessions-tick', 'text-anchor': 'start' });
    right.textContent = formatNumber(sessions.ticks[index], locale);
    grid.append(left, right);
  });
  chart.append(grid);

  const band = days.length > 0 ? plotWidth / days.length : plotWidth;
  const barWidth = band >= 4 ? Math.max(1, band * 0.68) : Math.max(0.5, band - 0.5);
  const bars = svg('g', { class: 'days' });
  days.forEach((day, index) => {
    const x = MARGIN.left + index * band;
    const group = svg('g', { class: 'day', 'data-day': day.day });
    const title = svg('title');
    title.textContent = dayTooltip(day, locale);
    group.append(title);
    group.append(svg('rect', { class: 'hit', x: round(x), y: MARGIN.top, width: round(Math.max(band, 1)), height: plotHeight }));
    const top = yHours(day.seconds / 3600);
    const barHeight = MARGIN.top + plotHeight - top;
    if (day.seconds > 0) {
      group.append(
        svg('rect', {
          class: 'bar',
          x: round(x + (band - barWidth) / 2),
          y: round(top),
          width: round(barWidth),
          // A day with a few seconds still shows a sliver.
          height: round(Math.max(barHeight, 1)),
          rx: barWidth >= 6 ? 2 : 0,
        }),
      );
    }
    bars.append(group);
  });
  chart.append(bars);

  if (days.length > 0) {
    const points = days.map((day, index) => `${round(MARGIN.left + (index + 0.5) * band)},${round(ySessions(day.sessions))}`);
    chart.append(svg('polyline', { class: 'sessions-line', points: points.join(' '), fill: 'none' }));
    if (band >= 10) {
      const dots = svg('g', { class: 'sessions-dots' });
      days.forEach((day, index) => {
        dots.append(svg('circle', { cx: round(MARGIN.left + (index + 0.5) * band), cy: round(ySessions(day.sessions)), r: 3 }));
      });
      chart.append(dots);
    }
  }

  const axis = svg('g', { class: 'x-axis' });
  for (const label of dayLabels(
    days.map((day) => day.day),
    Math.floor(plotWidth / 54),
    locale,
  )) {
    const x = round(MARGIN.left + (label.index + 0.5) * band);
    axis.append(svg('line', { x1: x, x2: x, y1: MARGIN.top + plotHeight, y2: MARGIN.top + plotHeight + 4, class: 'axis-line' }));
    const text = svg('text', { x, y: height - 8, class: 'tick', 'text-anchor': 'middle' });
    text.textContent = label.text;
    axis.append(text);
  }
  chart.append(axis);

  container.replaceChildren(chart);
  return chart;
}

/** A thin bar for a table cell: `fraction` (0…1) of the cell's width. */
export function shareBar(fraction) {
  const bar = svg('svg', { class: 'share-bar', width: '100%', height: 10, 'aria-hidden': 'true', focusable: 'false' });
  const share = Math.max(0, Math.min(1, Number(fraction) || 0));
  bar.append(svg('rect', { class: 'share-track', x: 0, y: 0, width: '100%', height: 10, rx: 3 }));
  if (share > 0) bar.append(svg('rect', { class: 'share-fill', x: 0, y: 0, width: `${Math.max(1, Math.round(share * 1000) / 10)}%`, height: 10, rx: 3 }));
  return bar;
}

/** Redraws `draw()` when `container` changes width (the chart is drawn in pixels). */
export function redrawOnResize(container, draw) {
  let width = container.clientWidth;
  let frame = 0;
  const observer = new ResizeObserver(() => {
    if (container.clientWidth === width) return;
    width = container.clientWidth;
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(draw);
  });
  observer.observe(container);
  return observer;
}

function round(value) {
  return Math.round(value * 10) / 10;
}
