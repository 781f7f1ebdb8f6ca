"""WebDataset shards of CoNR training data (DESIGN 3.6): sample schema, atomic writers, readers (checks: udpgen.shards.verify).

A sample is one character chunk, key ``{character}-{chunk:04d}`` (character ids match ``[A-Za-z0-9_-]+``,
at most 80 characters, so keys have no dots and member names fit a plain ustar header). Members:

* ``{key}.json``            metadata (:data:`SCHEMA`; see :func:`encode_sample`)
* ``{key}.{i:03d}.rgba.png``  view i: 8-bit RGBA PNG, straight alpha
* ``{key}.{i:03d}.udp.png``   view i's UDP, only for labelled views: 16-bit RGBA PNG (:mod:`udpgen.io.udp`)

WebDataset splits a member name at the first dot, so a consumer sees ``__key__ = key`` and the fields
``json``, ``000.rgba.png``, ``000.udp.png``, ...; :func:`decode_sample` takes that dict as it is
(``wds.WebDataset(urls).map(decode_sample)``). Do not use webdataset's ``.decode("rgb")`` on UDPs: its
PIL decoder keeps only 8 bits of a 16-bit RGBA PNG.

Directory: ``{split}-{index:06d}.tar`` (split ``train``/``val``: :func:`split_of`; ``bg`` for background
shards of ``{key}.png|jpg`` members). A writer streams into ``NAME.tar.tmp``, renames it to ``NAME.tar``
when complete, then writes ``NAME.stats.json`` atomically: the stats file is the commit marker. A job
skips a shard when :func:`is_complete`; opening a writer removes a stale ``.tmp`` or an uncommitted tar
left by a killed run. Tar bytes are a function of the samples alone (mtime 0, uid/gid 0, empty owner
names, mode 0644, members sorted within a sample), so a rerun with the same inputs gives the same bytes.
``sizes.json`` (shard name -> samples, the convention open_clip-style loaders read) and ``manifest.json``
(config, seed, versions, sha256 of every shard) are written at the end of a run.
"""

from .folder import (is_complete, list_shards, package_versions, read_stats, sha256_file, update_directory,
                     write_manifest, write_sizes)
from .reader import SkipCounter, iter_backgrounds, iter_samples
from .schema import (SCHEMA, SOURCES, VAL_EVERY, Sample, View, check_sample, decode_rgba, decode_sample, encode_rgba,
                     encode_sample, sample_key, shard_name, split_of)
from .writer import BackgroundWriter, ShardWriter

__all__ = ["SCHEMA", "SOURCES", "VAL_EVERY", "View", "Sample", "sample_key", "split_of", "encode_sample",
           "decode_sample", "check_sample", "encode_rgba", "decode_rgba", "ShardWriter", "BackgroundWriter",
           "shard_name", "is_complete", "list_shards", "write_sizes", "write_manifest", "sha256_file",
           "package_versions", "read_stats", "update_directory", "iter_samples", "iter_backgrounds", "SkipCounter"]
