"""Our own bot rules, as data: AI agents, operators of well-known bots, and generic signatures.

Used by footfall.enrich.bots together with the crawler-user-agents package's patterns. Tokens are
matched case-insensitively where a word of the user agent starts (so "GPTBot/1.1" matches
"gptbot"), stems where a word ends. The names, operators and purposes are facts from each
operator's published crawler documentation.
"""

from __future__ import annotations

from typing import Final

# What an AI operator fetches a page for.
TRAINING: Final = "training"  # collecting content to train models
SEARCH: Final = "search"  # indexing for an AI search or answer engine
ASSISTANT: Final = "assistant"  # fetched live because a person asked an assistant or agent

AI_KINDS: Final = (TRAINING, SEARCH, ASSISTANT)

# (token in the agent, display name, operator, purpose). Where one operator runs several agents
# with different purposes, each has its own row; a longer token wins over one it contains.
AI_AGENTS: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("GPTBot", "GPTBot", "OpenAI", TRAINING),
    ("OAI-SearchBot", "OAI-SearchBot", "OpenAI", SEARCH),
    ("ChatGPT-User", "ChatGPT-User", "OpenAI", ASSISTANT),
    ("ClaudeBot", "ClaudeBot", "Anthropic", TRAINING),
    ("anthropic-ai", "anthropic-ai", "Anthropic", TRAINING),
    ("Claude-SearchBot", "Claude-SearchBot", "Anthropic", SEARCH),
    ("Claude-User", "Claude-User", "Anthropic", ASSISTANT),
    ("Claude-Web", "Claude-Web", "Anthropic", ASSISTANT),
    ("PerplexityBot", "PerplexityBot", "Perplexity", SEARCH),
    ("Perplexity-User", "Perplexity-User", "Perplexity", ASSISTANT),
    ("Google-Extended", "Google-Extended", "Google", TRAINING),
    ("Google-CloudVertexBot", "Google-CloudVertexBot", "Google", SEARCH),
    ("Gemini-Deep-Research", "Gemini-Deep-Research", "Google", ASSISTANT),
    ("Google-NotebookLM", "Google-NotebookLM", "Google", ASSISTANT),
    ("Bytespider", "Bytespider", "ByteDance", TRAINING),
    ("CCBot", "CCBot", "Common Crawl", TRAINING),
    ("Applebot-Extended", "Applebot-Extended", "Apple", TRAINING),
    ("Meta-ExternalAgent", "Meta-ExternalAgent", "Meta", TRAINING),
    ("Meta-ExternalFetcher", "Meta-ExternalFetcher", "Meta", ASSISTANT),
    ("FacebookBot", "FacebookBot", "Meta", TRAINING),
    ("Amazonbot", "Amazonbot", "Amazon", TRAINING),
    ("Amzn-SearchBot", "Amzn-SearchBot", "Amazon", SEARCH),
    ("Amzn-User", "Amzn-User", "Amazon", ASSISTANT),
    ("AzureAI-SearchBot", "AzureAI-SearchBot", "Microsoft", SEARCH),
    ("DuckAssistBot", "DuckAssistBot", "DuckDuckGo", ASSISTANT),
    ("MistralAI-User", "MistralAI-User", "Mistral AI", ASSISTANT),
    ("cohere-ai", "cohere-ai", "Cohere", ASSISTANT),
    ("cohere-training-data-crawler", "cohere-training-data-crawler", "Cohere", TRAINING),
    ("YouBot", "YouBot", "You.com", SEARCH),
    ("Diffbot", "Diffbot", "Diffbot", TRAINING),
    ("DeepSeekBot", "DeepSeekBot", "DeepSeek", TRAINING),
    ("AI2Bot", "AI2Bot", "Allen Institute for AI", TRAINING),
    ("PanguBot", "PanguBot", "Huawei", TRAINING),
    ("Timpibot", "Timpibot", "Timpi", TRAINING),
    ("Webzio-Extended", "Webzio-Extended", "Webz.io", TRAINING),
    ("omgili", "omgili", "Webz.io", TRAINING),
    ("ImagesiftBot", "ImagesiftBot", "ImageSift", TRAINING),
    ("img2dataset", "img2dataset", "img2dataset", TRAINING),
    ("ChatGLM-Spider", "ChatGLM-Spider", "Zhipu AI", TRAINING),
    ("PhindBot", "PhindBot", "Phind", SEARCH),
    ("kagi-fetcher", "kagi-fetcher", "Kagi", ASSISTANT),
    ("iAskBot", "iAskBot", "iAsk", SEARCH),
    ("iaskspider", "iaskspider", "iAsk", SEARCH),
    ("LinerBot", "LinerBot", "Liner", SEARCH),
)

# (substring of a bot's name, lowercase; operator). Names any rule finds are mapped through this
# so that "Googlebot-Image" and "AdsBot-Google" both belong to Google; first hit wins.
OPERATORS: Final[tuple[tuple[str, str], ...]] = (
    ("google", "Google"),
    ("feedfetcher-google", "Google"),
    ("mediapartners", "Google"),
    ("apis-google", "Google"),
    ("bingbot", "Microsoft"),
    ("bingpreview", "Microsoft"),
    ("msnbot", "Microsoft"),
    ("adidxbot", "Microsoft"),
    ("microsoft", "Microsoft"),
    ("applebot", "Apple"),
    ("yandex", "Yandex"),
    ("baidu", "Baidu"),
    ("facebook", "Meta"),
    ("meta-", "Meta"),
    ("whatsapp", "Meta"),
    ("instagram", "Meta"),
    ("twitterbot", "X"),
    ("linkedinbot", "LinkedIn"),
    ("slack", "Slack"),
    ("discordbot", "Discord"),
    ("telegrambot", "Telegram"),
    ("pinterest", "Pinterest"),
    ("redditbot", "Reddit"),
    ("duckduck", "DuckDuckGo"),
    ("slurp", "Yahoo"),
    ("yahoo", "Yahoo"),
    ("ahrefs", "Ahrefs"),
    ("semrush", "Semrush"),
    ("mj12bot", "Majestic"),
    ("dotbot", "Moz"),
    ("rogerbot", "Moz"),
    ("petalbot", "Huawei"),
    ("sogou", "Sogou"),
    ("seznam", "Seznam"),
    ("yeti", "Naver"),
    ("naver", "Naver"),
    ("amazon", "Amazon"),
    ("amzn", "Amazon"),
    ("bytedance", "ByteDance"),
    ("tiktok", "ByteDance"),
    ("openai", "OpenAI"),
    ("chatgpt", "OpenAI"),
    ("oai-", "OpenAI"),
    ("anthropic", "Anthropic"),
    ("claude", "Anthropic"),
    ("perplexity", "Perplexity"),
    ("uptimerobot", "UptimeRobot"),
    ("pingdom", "Pingdom"),
    ("statuscake", "StatusCake"),
    ("datadog", "Datadog"),
    ("site24x7", "Site24x7"),
    ("newrelic", "New Relic"),
)

# HTTP libraries and command-line clients: never a person's browser, but on an endpoint where a
# backend reports its own visitors they name the backend, not a bot (see ingest.public_api).
# (token in the agent, display name.)
HTTP_CLIENTS: Final[tuple[tuple[str, str], ...]] = (
    ("curl/", "curl"),
    ("libcurl", "curl"),
    ("wget", "Wget"),
    ("python-requests", "python-requests"),
    ("python-urllib", "Python-urllib"),
    ("python-httpx", "httpx"),
    ("httpx", "httpx"),
    ("aiohttp", "aiohttp"),
    ("go-http-client", "Go-http-client"),
    ("okhttp", "okhttp"),
    *((f"java/{digit}", "Java") for digit in "0123456789"),  # "Java/Jbed" is a phone's runtime
    ("java-http-client", "Java"),
    ("apache-httpclient", "Apache-HttpClient"),
    ("jakarta commons-httpclient", "Apache-HttpClient"),
    ("libwww-perl", "libwww-perl"),
    ("lwp::", "libwww-perl"),
    ("axios/", "axios"),
    ("node-fetch", "node-fetch"),
    ("undici", "undici"),
    ("sindresorhus/got", "got"),
    ("guzzlehttp", "Guzzle"),
    ("faraday v", "Faraday"),
    ("ruby/", "Ruby"),
    ("http.rb/", "http.rb"),
    ("rest-client/", "rest-client"),
    ("restsharp", "RestSharp"),
    ("postmanruntime", "Postman"),
    ("insomnia/", "Insomnia"),
    ("httpie/", "HTTPie"),
    ("reqwest/", "reqwest"),
    ("(dart:io)", "Dart"),
    ("winhttp", "WinHTTP"),
    ("windowspowershell", "PowerShell"),
    ("php/", "PHP"),
    ("deno/", "Deno"),
    ("bun/", "Bun"),
    ("umami/", "Umami"),  # @umami/node's own agent, "Mozilla/5.0 Umami/<node version>"
)

# Tools that are never a person: HTTP libraries and command-line clients, scrapers, headless and
# automated browsers, uptime and synthetic monitors, and a few named fetchers.
TOOLS: Final[tuple[tuple[str, str], ...]] = (
    *HTTP_CLIENTS,
    ("scrapy", "Scrapy"),
    ("mechanize", "Mechanize"),
    # headless and automated browsers
    ("headlesschrome", "HeadlessChrome"),
    ("headless", "Headless browser"),
    ("phantomjs", "PhantomJS"),
    ("puppeteer", "Puppeteer"),
    ("playwright", "Playwright"),
    ("selenium", "Selenium"),
    ("webdriver", "WebDriver"),
    ("slimerjs", "SlimerJS"),
    ("jsdom/", "jsdom"),
    ("cypress/", "Cypress"),
    ("chrome-lighthouse", "Lighthouse"),
    ("lighthouse", "Lighthouse"),
    ("gtmetrix", "GTmetrix"),
    ("ptst/", "WebPageTest"),
    # uptime and synthetic monitoring
    ("uptimerobot", "UptimeRobot"),
    ("pingdom", "Pingdom"),
    ("statuscake", "StatusCake"),
    ("datadogsynthetics", "Datadog Synthetics"),
    ("datadog", "Datadog"),
    ("site24x7", "Site24x7"),
    ("newrelicpinger", "New Relic"),
    ("uptime-kuma", "Uptime Kuma"),
    ("betteruptime", "Better Stack"),
    ("better uptime", "Better Stack"),
    ("checkly", "Checkly"),
    ("freshping", "Freshping"),
    ("hetrixtools", "HetrixTools"),
    ("check_http", "Nagios"),
    ("nagios", "Nagios"),
    ("zabbix", "Zabbix"),
    ("catchpoint", "Catchpoint"),
    ("ruxitsynthetic", "Dynatrace"),
    ("updown.io", "updown.io"),
    ("cronitor", "Cronitor"),
    ("ohdear", "Oh Dear"),
    ("uptime", "Uptime monitor"),
    # named fetchers that carry none of the generic signs below
    ("googleprober", "GoogleProber"),
    ("googlesites", "GoogleSites"),
    ("googleadsenseinfeed", "GoogleAdSenseInfeed"),
    ("google page speed insights", "Google PageSpeed Insights"),
    ("google search console", "Google Search Console"),
    ("google_partner_monitoring", "Google Partner Monitoring"),
    ("facebookexternalua", "facebookexternalua"),
    ("meta-externalads", "meta-externalads"),
    ("daumoa", "Daumoa"),
    ("msie or firefox mutant", "Daumoa"),
    ("linkexpander", "Yahoo Link Preview"),
    # feed readers that say what they are
    ("rss reader", "RSS reader"),
)

# crawler-user-agents patterns we leave out, each with the reason.
# Patterns whose own examples are people's browsers, not bots:
NOT_BOT_PATTERNS: Final[dict[str, str]] = {
    "AP3A\\.240617\\.008": "an Android 15 build id that OPPO, realme and Infinix phones all send",
    "Fluid": "Fluid is a site-specific browser that people use",
}
# Patterns too broad to keep: they also match people's browsers or devices. The bots they were
# meant for are still caught by other rules (a stem such as "spider", or an address in the agent).
TOO_BROAD_PATTERNS: Final[dict[str, str]] = {
    "Sogou": "also matches Sogou's mobile browser",
    "Sonic": "also matches phone models (ViewSonic, Cherry Sonic, O+ Sonic)",
    "Butterfly": "also matches the HTC Butterfly phone",
    "Fever": "also matches Fever phone models",
    "Expanse": "also matches the Expanse phone model",
}
IGNORED_CRAWLER_PATTERNS: Final = NOT_BOT_PATTERNS.keys() | TOO_BROAD_PATTERNS.keys()

# Word stems that mark a crawler or a tool in any product name ("FooBot/1.0", "ExampleSpider",
# "SSL Checker"); the bot is named after the product token that contains the stem. A stem counts
# only where it ends a word, so "Cubot" phones and "Botanica" do not match "bot".
GENERIC_STEMS: Final[tuple[str, ...]] = (
    "bot",
    "crawl",
    "crawler",
    "spider",
    "slurp",
    "scrape",
    "scraper",
    "archiver",
    "checker",
    "validator",
    "analyzer",
    "analyser",
    "scanner",
    "probe",
    "fetcher",
    "parser",
    "transcoder",
    "inspector",
    "monitor",
    "useragent",
    "-google",  # Google's fetchers: "AdsBot-Google", "DuplexWeb-Google", "Storebot-Google"
)

# Word starts that mark a bot product in the same way: Google's many "Google-Something" fetchers.
# (Google's devices and apps say "Google TV", "Google Pixel", "GoogleTV", never "Google-".)
GENERIC_PREFIXES: Final[tuple[str, ...]] = ("google-",)

# Browsers whose whole agent is one "Name/version", as most scripts and tools send. Any other agent
# of that shape is taken for a bot.
BARE_BROWSERS: Final[frozenset[str]] = frozenset({"dillo", "w3m", "lynx", "links", "elinks", "netsurf", "amaya"})

# Product tokens that contain a generic stem but are people's devices or browsers.
NOT_BOTS: Final[frozenset[str]] = frozenset({"cubot"})

# The name (and operator) given to a request that carries no user agent at all.
EMPTY_AGENT: Final = "empty"

# Words of browser boilerplate, skipped when naming a bot after the first word of its agent.
BROWSER_WORDS: Final[frozenset[str]] = frozenset(
    {
        "mozilla", "compatible", "applewebkit", "khtml", "like", "gecko", "chrome", "safari", "mobile",
        "version", "windows", "nt", "win64", "x64", "wow64", "x11", "linux", "x86_64", "i686", "macintosh",
        "intel", "mac", "os", "en-us", "en", "iphone", "cpu", "android", "build", "firefox", "msie",
        "trident", "incompatible", "http", "https", "www",
    }
)  # fmt: skip
