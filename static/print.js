// A Print button for the account cards (shown only where scripts run).
var button = document.getElementById('print');
button.hidden = false;
button.addEventListener('click', function () { window.print(); });
