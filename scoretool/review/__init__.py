"""`scoretool review`: review and edit a plan in the browser, render it, export it.

`session` (the plan, its edits and undo, the files the page may see), `jobs` (renders in a worker
thread, exports), `media` (thumbnails, the soundtrack's waveform and loudness) need only scoretool;
`server` (Starlette on uvicorn, the optional extra `scoretool[review]`) serves the page in
`static/`.
"""
