"""Worked examples of CMM variants: subclasses that override a hook or two of :class:`strategies.cmm.CMMStrategy`."""
