// The time scrubber: a slider over the grid's bins, play/pause, and the UTC span of the bin.
import { el, binStart, utc, hhmm } from './util.js';

/**
 * data: {grid, bin, onChange(bin)}. Returns {set(bin)} to move it from outside (a warning's
 * bin); `onChange` is not called for that.
 */
export function scrubber(data, node) {
  const { grid } = data;
  const bins = Number(grid.bins);
  const slider = el('input', { type: 'range', min: 0, max: bins - 1, step: 1, value: data.bin, id: 'scrub', 'aria-label': 'bin' });
  const label = el('span', { class: 'bin-time', id: 'bin-time' });
  const play = el('button', { type: 'button', class: 'play', title: 'play / pause' }, '▶');
  let timer = null;
  const show = (b) => {
    const t = binStart(grid, b);
    const end = binStart(grid, b + 1);
    label.textContent = Number.isFinite(t) ? `bin ${b} · ${utc(t)}–${hhmm(end)} UTC` : `bin ${b}`;
  };
  const set = (b) => { slider.value = b; show(b); };
  slider.addEventListener('input', () => { show(Number(slider.value)); data.onChange(Number(slider.value)); });
  const stop = () => { clearInterval(timer); timer = null; play.textContent = '▶'; };
  play.addEventListener('click', () => {
    if (timer) return stop();
    play.textContent = '❚❚';
    timer = setInterval(() => {
      const b = Number(slider.value) + 1;
      if (b >= bins) return stop();
      set(b);
      data.onChange(b);
    }, 250);
  });
  show(data.bin);
  node.replaceChildren(el('div', { class: 'scrubber' }, play, slider, label));
  return { set, stop };
}
