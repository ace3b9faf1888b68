"""The IFEval instruction ids the suite writes prompts for, and which of them never go together."""

LOWERCASE = "change_case:english_lowercase"
CAPITAL = "change_case:english_capital"
NO_COMMA = "punctuation:no_comma"
NUMBER_WORDS = "length_constraints:number_words"
END_CHECKER = "startend:end_checker"
KEYWORDS_EXIST = "keywords:existence"
FORBIDDEN_WORDS = "keywords:forbidden_words"
QUOTATION = "startend:quotation"
TITLE = "detectable_format:title"
BULLETS = "detectable_format:number_bullet_lists"
HIGHLIGHTS = "detectable_format:number_highlighted_sections"
POSTSCRIPT = "detectable_content:postscript"
PLACEHOLDERS = "detectable_content:number_placeholders"
JSON_FORMAT = "detectable_format:json_format"
SUPPORTED_INSTRUCTIONS = (
    LOWERCASE, CAPITAL, NO_COMMA, NUMBER_WORDS, END_CHECKER, KEYWORDS_EXIST, FORBIDDEN_WORDS, QUOTATION,
    TITLE, BULLETS, HIGHLIGHTS, POSTSCRIPT, PLACEHOLDERS, JSON_FORMAT,
)  # fmt: skip
CONFLICTS = {
    LOWERCASE: {CAPITAL},
    JSON_FORMAT: {CAPITAL, QUOTATION, END_CHECKER, BULLETS, TITLE, POSTSCRIPT, HIGHLIGHTS},
    QUOTATION: {END_CHECKER, BULLETS},
    END_CHECKER: {POSTSCRIPT},
    BULLETS: {NUMBER_WORDS, HIGHLIGHTS},
}
"""Instruction pairs never combined in one prompt: no response satisfies both, or only an odd one."""
