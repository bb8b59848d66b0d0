// The wizard gives the hub this browser's time (a Pi has no clock battery).
document.getElementById('wizard').addEventListener('submit', function () {
  document.getElementById('browser_time').value = String(Date.now());
});
