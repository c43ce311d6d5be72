/**
 * The oEmbed providers mxcd knows without configuration, in the format of
 * oembed.com's `providers.json`.
 *
 * Source: the provider registry published at oembed.com (the iamcal/oembed
 * repository, MIT licence), the same two entries Synapse bundles in
 * `synapse/res/providers.json` (X since Synapse #18767, YouTube Shorts since
 * #15025): pages that carry no usable OpenGraph tags of their own. Other
 * sites are previewed from their HTML and its oEmbed autodiscovery links;
 * more providers can be added from files in the same format.
 */
export const DEFAULT_OEMBED_PROVIDERS = [
  {
    provider_name: "X",
    provider_url: "https://x.com/",
    endpoints: [
      {
        schemes: ["https://x.com/*", "https://x.com/*/status/*", "https://*.x.com/*/status/*"],
        url: "https://publish.x.com/oembed",
      },
    ],
  },
  {
    provider_name: "YouTube Shorts",
    provider_url: "https://www.youtube.com/",
    endpoints: [
      {
        schemes: ["https://youtube.com/shorts/*", "https://*.youtube.com/shorts/*"],
        url: "https://www.youtube.com/oembed",
      },
    ],
  },
] as const;
