// Runs first, as a classic script (module scripts cannot load from file://): says how to serve the page when
// opened from disk, or what the browser lacks; otherwise starts the app.
(function () {
  var status = document.getElementById('status');
  function fail(message) {
    status.textContent = message;
    status.className = 'error';
  }
  if (location.protocol === 'file:') {
    fail(
      'Open this page through a web server, not from a file: run `faceparse-edge serve ' +
        decodeURIComponent(location.pathname.replace(/\/[^/]*$/, '')) +
        '` and open the address it prints.',
    );
    return;
  }
  if (typeof WebAssembly !== 'object') {
    fail(
      'This browser has no WebAssembly, which the face parser needs: use a current Chrome, Edge, Firefox or Safari.',
    );
    return;
  }
  import('./app.js').catch(function (error) {
    fail('The app failed to start: ' + error.message);
  });
})();
