// The course's site: a display equation wider than the screen scrolls sideways inside its own box; make such a
// box reachable from the keyboard (axe: scrollable-region-focusable).
(function () {
  function mark() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (m) {
      if (m.scrollWidth > m.clientWidth + 1) {
        m.tabIndex = 0;
      }
    });
  }
  window.addEventListener('load', function () {
    if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
      window.MathJax.startup.promise.then(mark);
    }
  });
  window.addEventListener('resize', function () { window.requestAnimationFrame(mark); });
})();
