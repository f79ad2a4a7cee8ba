"""The Teams app package: the manifest template, the icons, and the code that builds
(`manifest.build`) and validates (`manifest.validate`) appPackage.zip."""
