"""Text drawn on the app's PNG figures (the reports' caption band, the validation and study figures): DejaVu Sans
(``resources/fonts``) for Latin, Greek and Cyrillic, and a font of the computer's own for Chinese, Japanese and
Korean (:class:`CaptionFonts`); OpenCV's own fonts draw ASCII only, the rest as question marks."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np


def font_file(bold: bool = False) -> Path:
    from app.demo import resources_dir  # noqa: PLC0415

    return resources_dir() / "fonts" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")


# Where a computer keeps fonts with Chinese, Japanese and Korean glyphs, for the PNG captions (DejaVu has none):
# fontconfig's answer first (Linux), then where Debian's packages, Windows and macOS put them
_CJK_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    "C:/Windows/Fonts/msyh.ttc", "C:/Windows/Fonts/msgothic.ttc", "C:/Windows/Fonts/malgun.ttf",
    "/System/Library/Fonts/PingFang.ttc", "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "/System/Library/Fonts/AppleSDGothicNeo.ttc",
)


@functools.cache
def system_cjk_fonts() -> tuple[Path, ...]:
    """The outline font files of this computer made for Chinese, Japanese or Korean (each holds some of them:
    Debian's Droid fallback has Han and kana, no Hangul and no Latin)."""
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    found: list[str] = []
    if shutil.which("fc-list"):
        for lang in ("ja", "zh-cn", "zh-tw", "ko"):
            try:
                listed = subprocess.run(["fc-list", f":lang={lang}", "file"], capture_output=True, text=True,
                                        timeout=10, check=False).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            found += sorted(name for name in (line.split(":", 1)[0].strip() for line in listed.splitlines())
                            if name.lower().endswith((".ttf", ".ttc", ".otf", ".otc")))  # outlines, not bitmaps
    found += [f for f in _CJK_FONT_FILES if Path(f).is_file()]
    return tuple(Path(f) for f in dict.fromkeys(found))


class CaptionFonts:
    """A PNG caption's text at one size: each letter in DejaVu Sans where it has the letter, else in the first
    system font (:func:`system_cjk_fonts`) that draws it, so that "山田 太郎 · R-CC" is Japanese and Latin both;
    a letter no font has is DejaVu's box (the PNG's text chunks still carry the text). One object a caption:
    PIL's fonts are not shared between threads."""

    def __init__(self, size: int) -> None:
        from PIL import ImageFont  # noqa: PLC0415

        self._load = lambda path: ImageFont.truetype(str(path), size)
        self._fonts = [self._load(font_file())]
        self._more = list(system_cjk_fonts())  # loaded when a letter needs them
        self._box: dict[int, bytes] = {}
        self._chosen: dict[str, int] = {}

    def _draws(self, index: int, letter: str) -> bool:
        font = self._fonts[index]
        if index not in self._box:
            self._box[index] = bytes(font.getmask("\uffff"))  # the font's missing-glyph box
        return bytes(font.getmask(letter)) != self._box[index]

    def _font_of(self, letter: str) -> int:
        if letter.isspace() or ord(letter) < 0x2e80:  # DejaVu: Latin, Greek, Cyrillic, symbols
            return 0
        if letter not in self._chosen:
            index = next((i for i in range(len(self._fonts)) if self._draws(i, letter)), None)
            while index is None and self._more:
                try:
                    self._fonts.append(self._load(self._more.pop(0)))
                except OSError:  # a listed file that FreeType cannot read
                    continue
                if self._draws(len(self._fonts) - 1, letter):
                    index = len(self._fonts) - 1
            self._chosen[letter] = 0 if index is None else index
        return self._chosen[letter]

    def runs(self, text: str) -> list[tuple[str, object]]:
        """``text`` as (piece, font) runs, in order."""
        out: list[tuple[str, int]] = []
        for letter in text:
            index = self._font_of(letter)
            if out and out[-1][1] == index:
                out[-1] = (out[-1][0] + letter, index)
            else:
                out.append((letter, index))
        return [(piece, self._fonts[index]) for piece, index in out]

    def ascent(self) -> int:
        """DejaVu's ascent at this size: the baseline lies this far below the ``xy`` given to :meth:`draw`."""
        return self._fonts[0].getmetrics()[0]

    def length(self, text: str) -> float:
        return sum(font.getlength(piece) for piece, font in self.runs(text))

    def draw(self, draw, xy: tuple[int, int], text: str, fill: tuple[int, int, int]) -> None:
        """Draw ``text`` on a PIL ``ImageDraw`` from ``xy``, run after run."""
        x, baseline = xy[0], xy[1] + self.ascent()  # one baseline for every font
        for piece, font in self.runs(text):
            draw.text((x, baseline), piece, font=font, fill=fill, anchor="ls")
            x += font.getlength(piece)


def put_text(image: np.ndarray, text: str, at: tuple[int, int], size: int, colour: tuple[int, int, int],
             fonts: CaptionFonts | None = None) -> None:
    """Draw ``text`` on a BGR ``image`` in place, its baseline starting at ``at``, in DejaVu Sans (and a system
    CJK font where needed, :class:`CaptionFonts`): OpenCV's own fonts have no Greek and no CJK, and drew a
    subgroup named in either as question marks. ``fonts``: the figure's own at ``size`` (each call loads them
    anew otherwise)."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    fonts = fonts or CaptionFonts(size)
    x, y = at
    top, bottom = max(0, y - 2 * size), min(image.shape[0], y + size)  # room for a taller CJK font's letters
    left, right = max(0, x), min(image.shape[1], x + int(np.ceil(fonts.length(text))) + 2)
    if top >= bottom or left >= right:
        return
    patch = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right, ::-1]))
    ascent = fonts.ascent()
    fonts.draw(ImageDraw.Draw(patch), (x - left, y - top - ascent), text, tuple(int(c) for c in colour[::-1]))
    image[top:bottom, left:right] = np.asarray(patch)[..., ::-1]
